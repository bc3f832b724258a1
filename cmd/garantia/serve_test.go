package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/histories"
)

func TestCheckLoopback(t *testing.T) {
	for _, c := range []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:8080", true}, {"127.3.4.5:0", true}, {"[::1]:0", true}, {"localhost:0", true},
		{":8080", false}, {"0.0.0.0:8080", false}, {"[::]:0", false}, {"10.0.0.1:80", false},
		{"example.com:80", false}, {"127.0.0.1", false},
	} {
		if err := checkLoopback(c.listen); (err == nil) != c.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", c.listen, err, c.ok)
		}
	}
}

func TestServeRefuses(t *testing.T) {
	store := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"every interface", []string{"serve", "--store", store, "--listen", ":0"}, "--allow-remote"},
		{"not loopback", []string{"serve", "--store", store, "--listen", "0.0.0.0:0"}, "not a loopback"},
		{"no store", []string{"serve", "--store", filepath.Join(store, "nope"), "--listen", "127.0.0.1:0"}, "nope"},
		{"argument", []string{"serve", store}, "unexpected argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, c.args...)
			if code != 254 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want 254 and %q", code, errOut, c.want)
			}
		})
	}
}

// TestServeCommand runs garantia serve on a free loopback port over a
// store with one run, fetches the index and the run's report, and stops it
// as Ctrl-C would.
func TestServeCommand(t *testing.T) {
	store := t.TempDir()
	run, err := histories.NewRun(store, "queue-acks-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(run.Dir); err != nil {
		t.Fatal(err)
	}
	synthRun(t, filepath.Dir(run.Dir), filepath.Base(run.Dir), "lost-write")
	if code, _, errOut := runCLI(t, "check", "--quiet", run.Dir); code != 1 {
		t.Fatalf("check: exit %d: %s", code, errOut)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		defer pw.Close()
		done <- serve(ctx, []string{"--store", store, "--listen", "127.0.0.1:0"}, pw, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		go io.Copy(io.Discard, pr)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s of its context ending")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL serve prints: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("serve printed %q, want a loopback URL", url)
	}
	go io.Copy(io.Discard, pr)

	client := &http.Client{Timeout: 30 * time.Second}
	fetch := func(path string) string {
		resp, err := client.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	index := fetch("")
	for _, want := range []string{"queue-acks-1", "lost-write ×1", "runs/" + run.String() + "/report.html"} {
		if !strings.Contains(index, want) {
			t.Errorf("the index lacks %q", want)
		}
	}
	if rep := fetch("runs/" + run.String() + "/report.html"); !strings.Contains(rep, `data-verdict="false"`) {
		t.Error("the served report does not show the invalid verdict")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after Ctrl-C, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	done <- 0 // for the cleanup
}
