/*
 * Tiny static helper for capture.sh, run inside the capture VM (no libpcap, no python there).
 *   esptool send SRC DST PORT PAYLOAD [ipopt]
 *                                          UDP datagram from SRC:40000 to DST:PORT; with
 *                                          "ipopt", an IPv4 header with 4 option bytes
 *   esptool recv FAMILY(4|6) PORT COUNT    print "RECV <hex>" for COUNT datagrams (5 s timeout)
 *   esptool inject IFNAME HEX              send the IP packet HEX out of IFNAME to 02:00:00:00:00:02
 *   esptool sniff IFNAME NAME COUNT        print "ESPCAP NAME <hex of IP packet>" for COUNT ESP
 *                                          packets seen on IFNAME (10 s timeout)
 */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
	fflush(stdout);
}

static int fill(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return AF_INET6;
	}
	fprintf(stderr, "bad address %s\n", addr);
	exit(2);
}

static void timeout(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

int main(int argc, char **argv)
{
	unsigned char buf[65536];
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "send")) {
		struct sockaddr_storage src, dst;
		socklen_t sl, dl;
		int fam = fill(argv[2], 40000, &src, &sl);
		fill(argv[3], atoi(argv[4]), &dst, &dl);
		int fd = socket(fam, SOCK_DGRAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&src, sl) < 0) {
			perror("bind");
			return 1;
		}
		/* NOP, NOP, NOP, end of options: the header grows to 24 bytes. */
		static const unsigned char opt[4] = { 1, 1, 1, 0 };
		if (argc == 7 && setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, sizeof(opt)) < 0) {
			perror("IP_OPTIONS");
			return 1;
		}
		if (sendto(fd, argv[5], strlen(argv[5]), 0, (struct sockaddr *)&dst, dl) < 0) {
			perror("sendto");
			return 1;
		}
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "recv")) {
		struct sockaddr_storage any;
		socklen_t al;
		int fam = fill(argv[2][0] == '6' ? "::" : "0.0.0.0", atoi(argv[3]), &any, &al);
		int fd = socket(fam, SOCK_DGRAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&any, al) < 0) {
			perror("bind");
			return 1;
		}
		timeout(fd, 5);
		for (int i = 0; i < atoi(argv[4]); i++) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0) {
				perror("recv");
				return 1;
			}
			printf("RECV ");
			hex(buf, n);
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "inject")) {
		size_t n = strlen(argv[3]) / 2;
		if (n > sizeof(buf) || n == 0) {
			fprintf(stderr, "bad packet length\n");
			return 2;
		}
		for (size_t i = 0; i < n; i++)
			sscanf(argv[3] + 2 * i, "%2hhx", &buf[i]);
		int fd = socket(AF_PACKET, SOCK_DGRAM, 0);
		struct sockaddr_ll ll = { .sll_family = AF_PACKET,
					  .sll_protocol = htons((buf[0] >> 4) == 6 ? ETH_P_IPV6 : ETH_P_IP),
					  .sll_ifindex = if_nametoindex(argv[2]), .sll_halen = 6,
					  .sll_addr = { 2, 0, 0, 0, 0, 2 } };
		if (fd < 0 || !ll.sll_ifindex ||
		    sendto(fd, buf, n, 0, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
			perror("inject");
			return 1;
		}
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "sniff")) {
		int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
		struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
					  .sll_ifindex = if_nametoindex(argv[2]) };
		if (fd < 0 || !ll.sll_ifindex || bind(fd, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
			perror("sniff");
			return 1;
		}
		timeout(fd, 10);
		int want = atoi(argv[4]);
		while (want > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0) {
				perror("recv");
				return 1;
			}
			/* SOCK_DGRAM: the link header is stripped; buf starts at the IP header. */
			int esp = (n >= 20 && (buf[0] >> 4) == 4 && buf[9] == 50) ||
				  (n >= 40 && (buf[0] >> 4) == 6 && buf[6] == 50);
			if (!esp)
				continue;
			printf("ESPCAP %s ", argv[3]);
			hex(buf, n);
			want--;
		}
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of esptool.c\n");
	return 2;
}
