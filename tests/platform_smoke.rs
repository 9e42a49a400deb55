// placeholder, replaced by the test-platform work
