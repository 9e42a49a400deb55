//! The issue-7 "must show" properties under KVM, with the load driven from inside the guests
//! through the guest driver's char device (`accel-tool load|latency|hold-session|probe-handles`).
//! Two test host boots, one accelvm process each, started with `--config`:
//!
//! - `fair`: two guests, weights 1:3, on one accelerator with one worker; both flood deflate
//!   at level 9 (the worker is the bottleneck, both queues stay full), then runs
//!   `accel-tool selftest` (known answers, AF_ALG, kernel acomp) on the shared accelerator. The ratio of bytes served comes from `accelvm stats --json`
//!   sampled every second, over the longest stretch where both tenants had requests waiting.
//! - `mixed`: three guests on one accelerator with two workers. `light` measures its
//!   per-request latency alone, then while `flood` floods (flood's `max-in-flight = 1` keeps a
//!   worker for the others, as docs/config.md advises, and a bandwidth limit keeps it from
//!   taking a whole emulated CPU of the test host: see [`FLOOD_BPS`]), probes every handle of the other
//!   tenants, and checks its results after `flood` was killed mid-stream (`poweroff -f` with its
//!   requests in flight: no driver teardown, no device reset; why not a kernel crash, and why no
//!   bulk load after the kill: the nested test host loses busy guests, see [`mixed_scenario`]).
//!   `capped` runs under a 0.5 MB/s bandwidth limit ([`CAP_BPS`]) the whole time and holds a session whose
//!   handle `light` tries to use.
//!
//! Guests cannot see each other's clocks, so the phases are placed by sleeps with seconds of
//! margin, and the test checks from the order of the console lines (accelvm writes each line
//! whole, as it arrives) that the phases really were ordered as intended.

use serde_json::Value;

use crate::common::{ScenarioOutput, run_scenario};

/// The rate limit checked (bytes/s): small against what `capped` could do unthrottled, even
/// when the emulated test host is starved of CPU (1 MB/s gave 0.77 MB/s at load average 12).
const CAP_BPS: f64 = 500_000.0;
/// The flooder's bandwidth limit (bytes/s). Without it the flooder keeps one of the test
/// host's two emulated CPUs busy with deflate and the light VM's p99 grew 4.2x (2 runs) from
/// CPU contention alone; the scheduler itself keeps a worker free for others (max-in-flight).
/// At 1 MB/s light's p99 still grew x1.3-x2.0 (4 runs, solo p99 2-3 ms since guests boot with
/// XSAVE hidden), close enough to the 3x bound that one CI run crossed it.
const FLOOD_BPS: u64 = 500_000;
/// How every guest loads the driver.
const MODPROBE: &str = "modprobe virtio_accel";
/// Requests waiting at the accelerator from which a tenant counts as saturating it.
const SATURATED_QUEUED: u64 = 8;
/// Shortest stats window a ratio or rate is computed over (seconds).
const MIN_WINDOW_S: f64 = 8.0;

/// A VM mapped onto acc0; `modprobe` is the driver's `modprobe` line.
fn vm(name: &str, weight: u32, extra: &str, modprobe: &str, cmd: &str) -> String {
    format!(
        "\n[[vm]]\nname = \"{name}\"\nkernel = \"KERNEL\"\ninitrd = \"INITRD\"\nmemory = 256\n\
         guest-cmd = '{modprobe} && {{ {cmd}; }}'\n  [[vm.accel]]\n  accelerator = \"acc0\"\n  weight = {weight}\n{extra}"
    )
}

fn write_config(file: &str, toml: &str) -> String {
    format!(
        "cat > {file}.in <<'ACCELVM_EOF'\n{toml}\nACCELVM_EOF\n\
         sed -e \"s|KERNEL|$ACCELVM_GUEST_KERNEL|\" -e \"s|INITRD|$ACCELVM_GUEST_INITRD|\" {file}.in > {file}\n"
    )
}

/// Seconds without any completed accel request, while the guests are up, after which a
/// scenario counts as stalled. Every phase of these scenarios submits requests at least every
/// few seconds; in the test host a guest beside busy ones sometimes just stops (the stall and
/// triple-fault rows of the session-4 table in `mixed_scenario`'s comment).
const STALL_SECS: u32 = 90;

/// Runs `accelvm run --config NAME.toml`, printing a stats sample line every second
/// (`SAMPLE NAME <uptime s> <json>`, the accelerators part of the document), then its status and its output prefixed with `NAME: `.
/// When the accelerator's request count stands still for [`STALL_SECS`] it prints a
/// `PLATFORM_STALL` line and stops accelvm: the harness reruns such a scenario in a fresh test
/// host (`tests/common`), up to 3 runs; on hardware it is a failure like any other.
fn run_sampled(name: &str) -> String {
    format!(
        r#"
accelvm run --config {name}.toml --api-socket {name}.sock > {name}.out 2>&1 &
pid=$!
last=; still=0
while kill -0 $pid 2>/dev/null; do
    t=$(cut -d' ' -f1 /proc/uptime)
    j=$(accelvm stats --socket {name}.sock --json 2>/dev/null | tr -d '\n ' | sed 's/,"vms":.*/}}/')
    [ -n "$j" ] && echo "SAMPLE {name} $t $j"
    r=$(echo "$j" | grep -o '"requests":[0-9]*' | head -n1)
    if [ -n "$r" ] && [ "$r" = "$last" ]; then still=$((still + 1)); else still=0; last=$r; fi
    if [ $still -ge {STALL_SECS} ]; then
        echo "PLATFORM_STALL {name}: no accel request completed for {STALL_SECS} s ($r), a guest stopped; stopping accelvm"
        kill $pid
        break
    fi
    sleep 1
done
wait $pid
echo "{name}_STATUS=$?"
sed 's/^/{name}: /' {name}.out
"#
    )
}

fn acc(workers: u32) -> String {
    format!("[[accelerator]]\nname = \"acc0\"\nworkers = {workers}\n")
}

fn fair_scenario() -> String {
    let fair_cmd = |n: &str| {
        format!(
            "accel-tool load --threads 4 --batch 12 --level 9 --secs 30; echo LOAD_STATUS_{n}=$?; \
             accel-tool selftest > /tmp/st 2>&1; echo SELFTEST_{n}=$?; grep -v ^PASS /tmp/st"
        )
    };
    let fair = format!(
        "{}{}{}",
        acc(1),
        vm("alpha", 1, "", MODPROBE, &fair_cmd("alpha")),
        vm("beta", 3, "", MODPROBE, &fair_cmd("beta"))
    );
    format!(
        "{}{}",
        write_config("fair.toml", &fair),
        run_sampled("fair")
    )
}

/// The flooder is killed with `poweroff -f` while its load runs: the kernel powers off at once,
/// with no driver teardown and requests in flight, which is what the device sees of a killed VM.
/// It used to be a kernel crash (`echo c > /proc/sysrq-trigger`), and `light` ran an unthrottled
/// bulk load (4 KiB AES-GCM, 4 in flight) after its probe; there, ~11 s after the kill, `light`
/// triple-faulted (2 of 2 runs, and a CI rehearsal) or, with `poweroff -f`, hung (1 of 3). The
/// nested test host does that to busy L2 guests. Scripted runs, a victim guest looping that bulk
/// load beside a second guest: victim lost in 4 of 9 runs after the neighbour's kernel panic (one
/// shared accelerator, two, or a neighbour without the device), 2 of 3 after `poweroff -f` of a
/// neighbour running the same load, 2 of 3 with that neighbour in *another accelvm process*, 3 of
/// 3 when that process was SIGKILLed and 2 of 3 when it was only SIGSTOPped (once before the
/// stop), 0 of 4 when the neighbour had gone idle before it powered off; the test host's own
/// kernel crashed 3 times ("stack guard page" in a vCPU thread). Nothing of accelvm is shared
/// across processes, so this is the platform: two guests driving sustained high exit and
/// interrupt rates at once. So the answers after the kill are checked in `light`'s one-at-a-time
/// latency loop and `capped`'s rate-limited load, which both run across it (never lost in any
/// run), and `light` runs no bulk load. `kvm.rs` still checks how a guest panic is reported.
fn mixed_scenario() -> String {
    let mixed = format!(
        "{}{}{}{}",
        acc(2),
        vm(
            "light",
            1,
            "",
            // The hostile guest: its driver passes handles it does not own to the device.
            "modprobe virtio_accel foreign_handles=1",
            // No bulk load after the kill: see mixed_scenario.
            "accel-tool latency --secs 44 --window-ms 2000; echo LAT_STATUS=$?; \
             accel-tool probe-handles 4 1024; echo PROBE_STATUS=$?"
        ),
        vm(
            "flood",
            1,
            &format!(
                "  max-in-flight = 1\n  bandwidth = {{ size = {}, refill-time-ms = 100 }}\n",
                FLOOD_BPS / 10
            ),
            MODPROBE,
            "sleep 16; accel-tool load --threads 2 --batch 8 --secs 600 & sleep 18; \
             echo FLOOD_KILL; sleep 1; poweroff -f; echo NOT_REACHED"
        ),
        vm(
            "capped",
            1,
            &format!(
                // One second of tokens: a worker woken late by the starved test host loses
                // none (a 100 ms bucket under-delivered 5% at load average 10).
                "  bandwidth = {{ size = {}, refill-time-ms = 1000 }}\n",
                CAP_BPS as u64
            ),
            MODPROBE,
            "accel-tool hold-session 55 > /tmp/hold 2>&1 & accel-tool load --op gcm \
             --size 16384 --threads 4 --batch 8 --secs 50; echo CAPPED_STATUS=$?; wait; cat /tmp/hold"
        ),
    );
    format!(
        "{}{}",
        write_config("mixed.toml", &mixed),
        run_sampled("mixed")
    )
}

/// A stats sample: (test host uptime in s, stats document).
type Sample = (f64, Value);
/// The first and last sample of a stretch.
type Window<'a> = (&'a Sample, &'a Sample);

/// (uptime, document) of every stats sample of run `name`.
fn samples(out: &ScenarioOutput, name: &str) -> Vec<(f64, Value)> {
    out.markers(&format!("SAMPLE {name} "))
        .iter()
        .filter_map(|rest| {
            let (t, json) = rest.split_once(' ')?;
            Some((t.parse().ok()?, serde_json::from_str(json).ok()?))
        })
        .collect()
}

/// A tenant's counter `key` in a stats document, by VM name.
fn tenant(doc: &Value, vm: &str, key: &str) -> Option<u64> {
    doc["accelerators"][0]["tenants"]
        .as_array()?
        .iter()
        .find(|t| t["vm"] == vm)?[key]
        .as_u64()
}

/// The longest run of consecutive samples for which `busy` holds: (first, last).
fn busy_window(s: &[Sample], busy: impl Fn(&Value) -> bool) -> Option<Window<'_>> {
    let (mut best, mut start): (Option<(usize, usize)>, Option<usize>) = (None, None);
    for (i, (_, doc)) in s.iter().enumerate() {
        if busy(doc) {
            let st = *start.get_or_insert(i);
            if best.is_none_or(|(a, b)| s[b].0 - s[a].0 < s[i].0 - s[st].0) {
                best = Some((st, i));
            }
        } else {
            start = None;
        }
    }
    best.map(|(a, b)| (&s[a], &s[b]))
}

fn delta(w: Window<'_>, vm: &str, key: &str) -> f64 {
    let get = |d: &Value| tenant(d, vm, key).unwrap_or(0) as f64;
    get(&w.1.1) - get(&w.0.1)
}

/// p99 (upper edge of its bucket, us) of the union of `LATWIN n=N h=i:c,...` windows
/// (accel-tool's buckets: 50 us x 1.15^i).
fn hist_p99(windows: &[&str]) -> f64 {
    let mut h = [0u64; 80];
    for w in windows {
        let cells = w.split_once(" h=").map_or("", |x| x.1);
        for cell in cells.split(',').filter(|c| !c.is_empty()) {
            let (i, c) = cell.split_once(':').expect("i:count");
            h[i.parse::<usize>().expect("bucket")] += c.parse::<u64>().expect("count");
        }
    }
    let n: u64 = h.iter().sum();
    assert!(n >= 100, "only {n} latency samples");
    let mut acc = 0;
    let i = h
        .iter()
        .position(|c| {
            acc += c;
            acc * 100 >= n * 99
        })
        .expect("non-empty");
    50.0 * 1.15f64.powi(i as i32 + 1)
}

/// The scenario output for a failure message, small enough to be read whole in a CI log: a stats
/// sample becomes `SAMPLE <t> vm=requests/queued/kB ...`, a latency window its count.
fn compact_dump(out: &ScenarioOutput) -> String {
    let mut text = String::from("(stats samples as vm=requests/queued/kB)\n");
    for line in out.lines() {
        let sample = line
            .strip_prefix("SAMPLE ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(name, rest)| Some((name, rest.split_once(' ')?)))
            .and_then(|(name, (t, json))| {
                Some((name, t, serde_json::from_str::<Value>(json).ok()?))
            });
        match sample {
            Some((name, t, doc)) => {
                text += &format!("SAMPLE {name} {t}");
                for ten in doc["accelerators"][0]["tenants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    text += &format!(
                        " {}={}/{}/{}",
                        ten["vm"].as_str().unwrap_or("?"),
                        ten["requests"],
                        ten["queued"],
                        ten["bytes"].as_u64().unwrap_or(0) / 1000
                    );
                }
            }
            None if line.contains("] LATWIN ") => {
                text += line.split(" h=").next().unwrap_or(line);
            }
            None => text += line,
        }
        text.push('\n');
    }
    ScenarioOutput {
        stdout: text,
        status: out.status,
    }
    .dump()
}

fn index_of(out: &ScenarioOutput, starts: &str) -> usize {
    out.lines()
        .position(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting with {starts:?}\n{}", compact_dump(out)))
}

fn check_fair(out: &ScenarioOutput) {
    let dump = compact_dump(out);
    for n in ["alpha", "beta"] {
        assert!(
            out.has_line(&format!("fair: [{n}] SELFTEST_{n}=0")),
            "{dump}"
        );
        assert!(
            out.has_line(&format!("fair: [{n}] LOAD_STATUS_{n}=0")),
            "{dump}"
        );
        let prefix = format!("fair: [{n}] LOAD_DONE ");
        let done = out.marker(&prefix);
        assert!(done.contains(" wrong=0 "), "{done}");
    }
    assert!(out.has_line("fair_STATUS=0"), "{dump}");
    let s = samples(out, "fair");
    // Each guest keeps 48 requests in flight; a few waiting could be a guest between requests.
    let saturated = |d: &Value| {
        ["alpha", "beta"]
            .iter()
            .all(|v| tenant(d, v, "queued").unwrap_or(0) >= SATURATED_QUEUED)
    };
    let w = busy_window(&s, saturated).expect("no sample with both tenants saturated");
    let secs = w.1.0 - w.0.0;
    let (a, b) = (delta(w, "alpha", "bytes"), delta(w, "beta", "bytes"));
    let ratio = b / a.max(1.0);
    eprintln!(
        "fair: window {secs:.1} s, alpha {:.2} MB/s, beta {:.2} MB/s, beta/alpha {ratio:.3}",
        a / secs / 1e6,
        b / secs / 1e6
    );
    assert!(
        secs >= MIN_WINDOW_S,
        "saturated window only {secs:.1} s\n{dump}"
    );
    assert!(
        (2.7..=3.3).contains(&ratio),
        "weights 1:3 gave a throughput ratio of {ratio:.3} over {secs:.1} s\n{dump}"
    );
}

fn check_mixed(out: &ScenarioOutput) {
    let dump = compact_dump(out);
    // Latency: light's 2 s windows that ended before flood started are "solo"; those that
    // began after it started and ended before it was killed are "flooded" (console order).
    assert!(out.has_line("mixed: [light] LAT_STATUS=0"), "{dump}");
    let flood_start = index_of(out, "mixed: [flood] LOAD_START");
    let kill = index_of(out, "mixed: [flood] FLOOD_KILL");
    let windows: Vec<(usize, &str)> = out
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l.strip_prefix("mixed: [light] LATWIN ")?)))
        .collect();
    let solo: Vec<&str> = windows
        .iter()
        .filter(|(i, _)| *i < flood_start)
        .map(|w| w.1)
        .collect();
    let flooded: Vec<&str> = windows
        .windows(2)
        .filter(|w| w[0].0 > flood_start && w[1].0 < kill)
        .map(|w| w[1].1)
        .collect();
    assert!(
        solo.len() >= 3 && flooded.len() >= 3,
        "{} solo and {} flooded windows (boot skew?)\n{dump}",
        solo.len(),
        flooded.len()
    );
    let (p_solo, p_flood) = (hist_p99(&solo), hist_p99(&flooded));
    eprintln!(
        "mixed: light p99 solo {p_solo:.0} us ({} windows), with flood {p_flood:.0} us ({} windows), x{:.2}",
        solo.len(),
        flooded.len(),
        p_flood / p_solo
    );
    assert!(
        p_flood <= 3.0 * p_solo,
        "p99 with a flooding VM {p_flood:.0} us > 3 x solo {p_solo:.0} us\n{dump}"
    );

    // flood really flooded: it had requests waiting (held back by its limits) all along.
    let s = samples(out, "mixed");
    let flooding = busy_window(&s, |d| tenant(d, "flood", "queued").unwrap_or(0) > 0)
        .expect("flood never had requests waiting");
    assert!(
        flooding.1.0 - flooding.0.0 >= 10.0,
        "flood was not flooding\n{dump}"
    );
    assert!(delta(flooding, "flood", "throttled_ns") > 0.0, "{dump}");

    // Cross-VM handles: capped's live handle lies in the probed space and was refused.
    let held = out.marker("mixed: [capped] HELD_HANDLE=");
    let held = u64::from_str_radix(held.trim_start_matches("0x"), 16).expect("hex handle");
    let probe = out.marker("mixed: [light] PROBE ");
    assert!(out.has_line("mixed: [light] PROBE_STATUS=0"), "{dump}");
    assert!(
        probe.contains(" accepted=0 destroyed=0 own_ok=true"),
        "{probe}"
    );
    assert!(
        held >> 32 <= 4 && held & 0xffff_ffff <= 1024,
        "capped's handle {held:#x} is outside the probed space\n{dump}"
    );
    assert!(
        out.has_line("mixed: [capped] HELD_HANDLE_STILL_OK=true"),
        "{dump}"
    );

    // The kill: flood died mid-stream, the others' results after it are correct.
    assert!(!dump.contains("NOT_REACHED"), "{dump}");
    assert!(
        dump.contains("mixed: accelvm: error: vm flood: the guest stopped (poweroff)"),
        "{dump}"
    );
    // light kept measuring (every answer checked) for seconds after the kill, then probed.
    let after_kill = windows.iter().filter(|(i, _)| *i > kill).count();
    assert!(
        after_kill >= 2,
        "only {after_kill} latency windows of light after the kill\n{dump}"
    );
    assert!(kill < index_of(out, "mixed: [light] LATENCY "), "{dump}");
    let lat = out.marker("mixed: [light] LATENCY ");
    assert!(lat.contains(" wrong=0 "), "light: {lat}");
    assert!(kill < index_of(out, "mixed: [capped] LOAD_DONE"), "{dump}");
    let done = out.marker("mixed: [capped] LOAD_DONE ");
    assert!(done.contains(" wrong=0 "), "capped: {done}");
    assert!(out.has_line("mixed: [capped] CAPPED_STATUS=0"), "{dump}");
    assert!(out.has_line("mixed_STATUS=1"), "{dump}");

    // The rate limit: never above it over capped's whole run, and within 10% of it over the
    // longest stretch where capped was held back by it between every two samples (a guest
    // starved of CPU by the emulated test host may not even ask for the rate).
    let active = busy_window(&s, |d| tenant(d, "capped", "requests").unwrap_or(0) > 0)
        .expect("capped never ran");
    let all = delta(active, "capped", "bytes") / (active.1.0 - active.0.0);
    let throttled: Vec<bool> = s
        .windows(2)
        .map(|w| {
            tenant(&w[1].1, "capped", "throttled_ns") > tenant(&w[0].1, "capped", "throttled_ns")
                && tenant(&w[1].1, "capped", "queued").unwrap_or(0) > 0
        })
        .collect();
    let mut best: Option<(usize, usize)> = None;
    let mut run_start = None;
    for (i, t) in throttled.iter().enumerate() {
        if *t {
            let st = *run_start.get_or_insert(i);
            if best.is_none_or(|(a, b)| s[b + 1].0 - s[a].0 < s[i + 1].0 - s[st].0) {
                best = Some((st, i));
            }
        } else {
            run_start = None;
        }
    }
    let (a, b) = best.expect("capped was never held back by its limit");
    let w = (&s[a], &s[b + 1]);
    let secs = w.1.0 - w.0.0;
    let rate = delta(w, "capped", "bytes") / secs;
    eprintln!(
        "mixed: capped {:.3} MB/s over {secs:.1} s held back, {:.3} MB/s over its whole run (limit {:.3} MB/s)",
        rate / 1e6,
        all / 1e6,
        CAP_BPS / 1e6
    );
    assert!(
        all <= 1.1 * CAP_BPS,
        "capped got {all:.0} B/s over its run\n{dump}"
    );
    assert!(
        secs >= MIN_WINDOW_S,
        "held back by the limit for only {secs:.1} s\n{dump}"
    );
    assert!(
        (rate / CAP_BPS - 1.0).abs() <= 0.10,
        "rate {rate:.0} B/s is not within 10% of {CAP_BPS} B/s\n{dump}"
    );
}

/// Two guests, weights 1:3: correct results and a 1:3 throughput ratio under saturation.
#[test]
fn two_guests_share_by_weight() {
    check_fair(&run_scenario(&fair_scenario()));
}

/// Three guests: latency under a flood, a rate limit, cross-VM handles, a guest killed.
#[test]
fn three_guests_isolated() {
    check_mixed(&run_scenario(&mixed_scenario()));
}
