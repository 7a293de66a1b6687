package testsvc

import "testing"

// ChromiumEnv names the Chromium binary the browser tests drive, instead of
// chromium on PATH.
const ChromiumEnv = "DUET_TEST_CHROMIUM"

// ChromiumInstall is how to get Chromium.
const ChromiumInstall = "apt-get install chromium"

// Chromium is the path of a Chromium binary for a browser test (the test
// starts it itself, headless). It calls Missing when there is none.
func Chromium(t testing.TB) string {
	t.Helper()
	bin, ok := findBinary(ChromiumEnv, "chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
	if !ok {
		Missing(t, "Chromium", ChromiumInstall)
	}
	return bin
}
