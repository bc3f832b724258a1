package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"
)

// ModulePath is the garantia module, whose cmd/garantia a static binary is
// built from when the running binary is not static.
const ModulePath = "github.com/garantia/garantia"

// SourceDirEnv names the garantia source module for static builds when
// Options.SourceDir is empty.
const SourceDirEnv = "GARANTIA_SOURCE_DIR"

// ImageRepo is the repository name of the node images: a tag is
// ImageRepo + ":" + the first 16 hex digits of the binary's sha256.
const ImageRepo = "garantia-node"

// dockerfile is the whole image: the binary and nothing else. FROM
// scratch needs no base image, so no registry is ever asked.
const dockerfile = `FROM scratch
COPY garantia /garantia
ENTRYPOINT ["/garantia"]
`

// BinaryInfo describes an executable as the image needs to know it.
type BinaryInfo struct {
	// ELF is false for anything that is not an ELF executable (a macOS
	// Mach-O binary, a script).
	ELF bool
	// Arch is the GOARCH of an ELF executable's machine ("amd64"); "" if
	// unknown.
	Arch string
	// Static is true when the executable needs no dynamic loader and no
	// shared library: it runs in an empty image.
	Static bool
}

// elfArch maps ELF machines to GOARCH names.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// InspectBinary reads path's ELF headers: whether it is static (no
// PT_INTERP program header, no DT_NEEDED library) and for which machine.
// A file that is not ELF is reported as such, not as an error.
func InspectBinary(path string) (BinaryInfo, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return BinaryInfo{}, nil
		}
		return BinaryInfo{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	info := BinaryInfo{ELF: true, Arch: elfArch[f.Machine], Static: true}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			info.Static = false
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		info.Static = false
	}
	return info, nil
}

// staticBinary returns the path of a static garantia executable for the
// engine's architecture: bin itself when it is one, else a build of the
// source module with CGO_ENABLED=0 (cached under the user's cache folder,
// keyed by bin's content, so a rebuilt harness rebuilds its nodes and an
// unchanged one does not).
func staticBinary(ctx context.Context, bin, sourceDir, arch string, logf func(string, ...any)) (string, error) {
	info, err := InspectBinary(bin)
	if err != nil {
		return "", err
	}
	if info.ELF && info.Static && info.Arch == arch {
		return bin, nil
	}
	why := fmt.Sprintf("%s is dynamically linked (built with cgo)", bin)
	switch {
	case !info.ELF:
		why = fmt.Sprintf("%s is not a Linux executable", bin)
	case info.Arch != arch:
		why = fmt.Sprintf("%s is built for %q, the Docker engine runs %q", bin, info.Arch, arch)
	}
	src, err := findSource(sourceDir)
	if err != nil {
		return "", fmt.Errorf("%s, and a FROM scratch image needs a static linux/%s binary; %w. "+
			"Build garantia with `CGO_ENABLED=0 go build ./cmd/garantia`, or point %s at the garantia source",
			why, arch, err, SourceDirEnv)
	}
	sum, err := fileSHA256(bin)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "garantia", "static", sum[:16]+"-linux-"+arch, "garantia")
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() {
		return out, nil
	}
	if logf != nil {
		logf("%s; building a static linux/%s garantia from %s", why, arch, src)
	}
	if err := goBuildStatic(ctx, src, arch, out); err != nil {
		return "", err
	}
	return out, nil
}

// findSource returns the garantia module's root: dir if given, else
// $GARANTIA_SOURCE_DIR, else the first folder from the working directory up
// whose go.mod declares the module.
func findSource(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(SourceDirEnv)
	}
	if dir != "" {
		if !isModuleRoot(dir) {
			return "", fmt.Errorf("%s has no go.mod of module %s", dir, ModulePath)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("no garantia source to build from: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isModuleRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no garantia source module (go.mod of %s) in %s or above", ModulePath, wd)
		}
	}
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == ModulePath {
			return true
		}
	}
	return false
}

// goBuildStatic builds cmd/garantia of the module in src for linux/arch
// without cgo into out (written atomically: a crash leaves no half file
// that the cache would trust).
func goBuildStatic(ctx context.Context, src, arch, out string) error {
	// The go tool on PATH, else the one of the GOROOT this binary knows
	// (go/build reads $GOROOT, then the root it was built with).
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(build.Default.GOROOT, "bin", "go")
		if _, serr := os.Stat(gotool); serr != nil {
			return fmt.Errorf("building a static garantia needs the go tool, and none is on PATH: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("static build: %w", err)
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, gotool, "build", "-o", tmp, "./cmd/garantia")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("static build of %s/cmd/garantia in %s: %w\n%s", ModulePath, src, err, stderr.Bytes())
	}
	if err := atomicfile.Rename(tmp, out); err != nil {
		return fmt.Errorf("static build: %w", err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ImageTag is the tag of the node image holding a binary with this sha256.
func ImageTag(binarySHA256 string) string {
	return ImageRepo + ":" + binarySHA256[:16]
}

// buildContext returns the tar of the image's build context: the
// Dockerfile and the binary, streamed from disk.
func buildContext(bin string) (io.ReadCloser, error) {
	f, err := os.Open(bin)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		tw := tar.NewWriter(pw)
		now := time.Now()
		err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), ModTime: now})
		if err == nil {
			_, err = io.WriteString(tw, dockerfile)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "garantia", Mode: 0o755, Size: st.Size(), ModTime: now})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// EnsureImage makes sure the engine has the node image for the garantia
// binary bin (a static build of it, see Options.Binary) and returns its
// tag. An image already there is reused: the tag is the binary's content
// hash.
func EnsureImage(ctx context.Context, eng Engine, bin, sourceDir string, logf func(string, ...any)) (string, error) {
	v, err := eng.Version(ctx)
	if err != nil {
		return "", err
	}
	if v.OS != "" && v.OS != "linux" {
		return "", fmt.Errorf("the Docker engine runs %s containers; garantia's nodes are Linux executables", v.OS)
	}
	arch := v.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	static, err := staticBinary(ctx, bin, sourceDir, arch, logf)
	if err != nil {
		return "", err
	}
	sum, err := fileSHA256(static)
	if err != nil {
		return "", err
	}
	tag := ImageTag(sum)
	if ok, err := eng.ImageExists(ctx, tag); err != nil {
		return "", fmt.Errorf("look for image %s: %w", tag, err)
	} else if ok {
		return tag, nil
	}
	bc, err := buildContext(static)
	if err != nil {
		return "", fmt.Errorf("image build context: %w", err)
	}
	defer bc.Close()
	if logf != nil {
		logf("building image %s from %s", tag, static)
	}
	labels := map[string]string{LabelManaged: "true", LabelBinary: sum}
	if err := eng.BuildImage(ctx, bc, tag, labels); err != nil {
		return "", fmt.Errorf("build image %s: %w", tag, err)
	}
	return tag, nil
}
