package report

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

// storeWithRuns makes a store with three runs: an old valid one, a newer
// invalid one, and the newest, which has a history but no results yet.
func storeWithRuns(t *testing.T) (root string, runs []*histories.Run) {
	t.Helper()
	root = t.TempDir()
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		test  string
		fault synth.Fault
		check bool
	}{
		{"queue-acks-all", "", true},
		{"queue-acks-1-kill", synth.LostWrite, true},
		{"queue-acks-all-pause", "", false},
	} {
		run, err := histories.NewRun(root, c.test, base.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ops := plantedHistory(t, c.fault, plantSeed+int64(i), 2000)
		writeHistory(t, run.Dir, ops)
		test := `{"name":"` + c.test + `","config":{"nodes":1,"acks":"all","nemesis":["kill"]}}`
		if err := os.WriteFile(run.Path(histories.TestFile), []byte(test), 0o644); err != nil {
			t.Fatal(err)
		}
		if c.check {
			checkInto(t, run.Dir, run.Dir, ops)
		}
		runs = append(runs, run)
	}
	return root, runs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func serveStore(t *testing.T, root string) *httptest.Server {
	t.Helper()
	h, err := NewStoreHandler(root)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv
}

func TestServeListsRunsNewestFirst(t *testing.T) {
	root, runs := storeWithRuns(t)
	srv := serveStore(t, root)
	code, body := get(t, srv.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	pg := parsePage(t, []byte(body))
	if pg.classes["run"] != 3 {
		t.Fatalf("want 3 runs listed, got %d:\n%s", pg.classes["run"], body)
	}
	order := regexp.MustCompile(`data-test="([^"]+)" data-verdict="([^"]+)"`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, m := range order {
		got = append(got, m[1]+":"+m[2])
	}
	want := []string{"queue-acks-all-pause:none", "queue-acks-1-kill:false", "queue-acks-all:true"}
	if !slices.Equal(got, want) {
		t.Errorf("runs listed %q, want newest first %q", got, want)
	}
	for _, s := range []string{"lost-write ×1", "nodes=1 acks=all nemesis=kill", "verdict invalid", "verdict valid"} {
		if !strings.Contains(body, s) {
			t.Errorf("the index lacks %q", s)
		}
	}
	// Every run's report is served; the one without results gets its
	// checkers run, and each is written into its folder.
	for _, run := range runs {
		link := "runs/" + run.String() + "/" + FileName
		if !slices.Contains(pg.hrefs, link) {
			t.Errorf("the index does not link %s", link)
			continue
		}
		code, rep := get(t, srv.URL+"/"+link)
		if code != http.StatusOK || !strings.Contains(rep, `id="verdict"`) {
			t.Errorf("GET %s = %d, want the report", link, code)
		}
		if _, err := os.Stat(run.Path(FileName)); err != nil {
			t.Errorf("the report of %s was not written into its folder: %v", run, err)
		}
	}
	code, res := get(t, srv.URL+"/runs/"+runs[1].String()+"/results.json")
	if code != http.StatusOK || !strings.Contains(res, `"lost-write"`) {
		t.Errorf("GET results.json = %d", code)
	}
	code, _ = get(t, srv.URL+"/runs/latest/"+histories.HistoryFile)
	if code != http.StatusOK {
		t.Errorf("GET /runs/latest/history.jsonl = %d: the store's own link should be followed", code)
	}
}

// TestServeStaysInsideTheStore: no path reaches a file outside the store,
// whether by dot-dot (plain or escaped) or by a symlink inside the store.
func TestServeStaysInsideTheStore(t *testing.T) {
	root, _ := storeWithRuns(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret.txt")
	if err := os.WriteFile(secret, []byte("TOP-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secretDir, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveStore(t, root)
	for _, p := range []string{
		"/runs/" + rel,
		"/runs/../" + rel,
		"/runs/%2e%2e/" + rel,
		"/runs/..%2f" + strings.ReplaceAll(rel, "/", "%2f"),
		"/runs/escape/secret.txt",
		"/runs/escape.txt",
		"/runs/escape/",
		"/../../../../../../" + strings.TrimPrefix(secret, "/"),
	} {
		req, err := http.NewRequest("GET", srv.URL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.RawPath, req.URL.Path = p, p // send it as written
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "TOP-SECRET") || strings.Contains(string(b), "secret.txt") {
			t.Errorf("GET %s = %d and shows the file outside the store", p, resp.StatusCode)
		}
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s = %d, want 404 or 403", p, resp.StatusCode)
		}
	}
	if code, _ := get(t, srv.URL+"/runs/no-such-test/20260101T000000.000Z/"+FileName); code != http.StatusNotFound {
		t.Errorf("the report of a run that does not exist: %d, want 404", code)
	}
}

func TestServeEmptyAndMissingStore(t *testing.T) {
	srv := serveStore(t, t.TempDir())
	code, body := get(t, srv.URL+"/")
	if code != http.StatusOK || !strings.Contains(body, `id="no-runs"`) {
		t.Errorf("an empty store: %d %q", code, body)
	}
	if _, err := NewStoreHandler(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("want an error for a store that does not exist")
	}
}
