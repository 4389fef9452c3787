package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestDocs_openapiYAML: /openapi.yaml is the repository's openapi.yaml, byte
// for byte, with no token.
func TestDocs_openapiYAML(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	want, err := os.ReadFile(filepath.Join("..", "..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(t, http.MethodGet, "/openapi.yaml", nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, want) {
		t.Fatalf("/openapi.yaml differs from openapi.yaml (%d bytes, want %d)", len(r.body), len(want))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
}

// TestDocs_page: /docs and its script come from the binary, and the page
// loads nothing from another host.
func TestDocs_page(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	page := s.do(t, http.MethodGet, "/docs", nil)
	wantStatus(t, page, http.StatusOK)
	if ct := page.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	if m := regexp.MustCompile(`(?i)(src|href|spec-url)="(https?:)?//`).Find(page.body); m != nil {
		t.Errorf("the page loads %s... from another host: it must work offline", m)
	}
	for _, ref := range []string{`spec-url="openapi.yaml"`, `src="docs/redoc.standalone.js"`} {
		if !bytes.Contains(page.body, []byte(ref)) {
			t.Errorf("the page has no %s:\n%s", ref, page.body)
		}
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "apidocs", "redoc.standalone.js"))
	if err != nil {
		t.Fatal(err)
	}
	_, js := s.send(t, http.MethodGet, "/docs/redoc.standalone.js", nil)
	wantStatus(t, js, http.StatusOK)
	if !bytes.Equal(js.body, want) {
		t.Fatalf("the script differs from apidocs/redoc.standalone.js")
	}
	if ct := js.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q, want text/javascript", ct)
	}
	// A reload costs no megabyte.
	_, again := s.send(t, http.MethodGet, "/docs/redoc.standalone.js", nil, "If-None-Match", js.header.Get("ETag"))
	wantStatus(t, again, http.StatusNotModified)
}

// TestDocs_browser opens /docs in a headless Chromium (Debian's chromium
// package; .ci/run installs it) that can resolve no host but 127.0.0.1, and
// checks that the rendered page holds every operation of openapi.yaml, both
// families'. It keeps a screenshot in ci-artifacts/docs.png.
func TestDocs_browser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	s := mustRunMain(t, nil)
	dom := runChromium(t, browser, "--dump-dom", s.URL+"/docs")
	spec, err := openapi3.NewLoader().LoadFromFile(filepath.Join("..", "..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ops := 0
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			// Redoc renders each operation as a section with this id, its
			// summary as the heading.
			if !strings.Contains(dom, `id="operation/`+op.OperationID+`"`) {
				t.Errorf("the rendered page has no operation %s", op.OperationID)
			}
			if !strings.Contains(dom, op.Summary) {
				t.Errorf("the rendered page does not show %q (%s)", op.Summary, op.OperationID)
			}
			ops++
		}
	}
	for _, want := range []string{"/v1/operations/{operation_id}", "/v1.0/icc/operations", "/v2.0/operations/{operation_id}"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page does not show the path %s", want)
		}
	}
	if ops < 8 {
		t.Fatalf("checked %d operations; openapi.yaml has more", ops)
	}

	dir := filepath.Join("..", "..", "ci-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := filepath.Abs(filepath.Join(dir, "docs.png"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(png)
	runChromium(t, browser, "--window-size=1280,1000", "--hide-scrollbars", "--screenshot="+png, s.URL+"/docs")
	if st, err := os.Stat(png); err != nil || st.Size() < 10_000 {
		t.Fatalf("no screenshot of the page in %s: %v", png, err)
	}
	t.Logf("screenshot: %s", png)
}

// chromium finds the browser, which CI must have.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is needed to check /docs in a browser (apt-get install chromium)")
	}
	t.Skip("chromium is needed to check /docs in a browser (apt-get install chromium)")
	return ""
}

// runChromium runs a headless Chromium on a profile of its own that resolves
// no host but 127.0.0.1 (so the page is shown to work offline), lets the
// page's scripts run for up to 30 s of virtual time (the clock stands still
// while a request is pending), and returns what it printed on stdout.
func runChromium(t *testing.T, browser string, args ...string) string {
	t.Helper()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", // containers' /dev/shm is small
		"--user-data-dir=" + t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--virtual-time-budget=30000",
	}
	// Far more than it needs: a browser that hangs fails the test rather
	// than holding it until go test's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, stderr.Bytes())
	}
	return stdout.String()
}
