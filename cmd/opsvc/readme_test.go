package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestREADME runs the curl examples of the README's "Try it" section, in
// order, against a fresh service, and checks each answers as the README shows.
func TestREADME(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("curl is needed to run the README's examples: %v", err)
		}
		t.Skipf("curl is needed to run the README's examples: %v", err)
	}
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "## Try it")
	end := strings.Index(text[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Try it section")
	}
	blocks := fencedBlocks(text[start : start+1+end])
	s := mustRunMain(t, map[string]string{"AUTH_TOKENS_FILE": filepath.Join(root, "testdata", "tokens.json")})
	ran := 0
	for i := 0; i+1 < len(blocks); i++ {
		cmd := blocks[i]
		if !strings.HasPrefix(cmd, "curl ") {
			continue
		}
		want := blocks[i+1]
		i++
		c := exec.Command("bash", "-c", strings.ReplaceAll(cmd, "http://localhost:8080", s.URL))
		c.Dir = root // where the README's @testdata paths are
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v: %s", cmd, err, out)
		}
		if !sameAnswer(string(out), want) {
			t.Errorf("%s\n got: %s\nwant: %s", cmd, out, want)
		}
		ran++
	}
	if ran < 10 {
		t.Fatalf("ran %d examples; the README has more", ran)
	}
}

// fencedBlocks returns the contents of the ``` blocks of a Markdown text.
func fencedBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, strings.Join(cur, "\n"))
				cur = nil
			}
			in = !in
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return blocks
}

// sameAnswer compares as JSON when the README shows JSON, else as text.
func sameAnswer(got, want string) bool {
	var g, w any
	if json.Unmarshal([]byte(want), &w) == nil {
		return json.Unmarshal([]byte(got), &g) == nil && reflect.DeepEqual(g, w)
	}
	return strings.TrimSpace(got) == strings.TrimSpace(want)
}
