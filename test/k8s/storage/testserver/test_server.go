// Package testserver stands in for k8s.io/apiserver/pkg/storage/etcd3/testserver
// when the apiserver's storage tests are built by test/k8s/storage (the file is
// swapped in with `go test -overlay`, see build.sh). Upstream starts an
// embedded etcd in the test process; this version runs the tests against a
// server outside it, so the same unmodified tests judge real etcd and etcd-ts.
//
// Two modes, chosen by environment variable:
//
//   - ETCD_TEST_SERVER="<command> [args...]": every RunEtcd starts a fresh
//     server process with etcd's flags (free ports, a data dir in t.TempDir())
//     and stops it when the test ends, exactly like the embedded server.
//     Example: ETCD_TEST_SERVER="node /repo/dist/node/src/main.js".
//   - ETCD_TEST_ENDPOINTS="http://127.0.0.1:2379[,...]": every test shares
//     the given server (or cluster). Tests that assume an empty store, or a
//     server configuration of their own, can fail in this mode.
//
// The exported API (NewTestConfig, RunEtcd) matches upstream so the test
// files compile unchanged.
package testserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

func freePorts(count int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < count; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("could not bind to a port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// NewTestConfig returns an embed.Config used only as a description: its
// name, URLs, data dir and the few settings the tests change are turned into
// command-line flags by RunEtcd.
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	cfg.UnsafeNoFsync = true
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Dir = filepath.Join(t.TempDir(), "data")
	return cfg
}

// flags renders the settings of cfg that a test may change as etcd flags.
// Anything else a test sets on cfg (TLS, for instance) is not carried over.
func flags(cfg *embed.Config) []string {
	client := cfg.ListenClientUrls[0].String()
	peer := cfg.ListenPeerUrls[0].String()
	args := []string{
		"--name", cfg.Name,
		"--data-dir", cfg.Dir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", cfg.Name + "=" + peer,
		"--initial-cluster-state", "new",
	}
	if cfg.UnsafeNoFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	if cfg.WatchProgressNotifyInterval > 0 {
		args = append(args, "--watch-progress-notify-interval", cfg.WatchProgressNotifyInterval.String())
	}
	return args
}

var portLock sync.Mutex

// RunEtcd starts (or, with ETCD_TEST_ENDPOINTS, reuses) a server and
// returns a client connected to it. The server is stopped when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	var endpoints []string
	if eps := os.Getenv("ETCD_TEST_ENDPOINTS"); eps != "" {
		endpoints = strings.Split(eps, ",")
	} else {
		command := strings.Fields(os.Getenv("ETCD_TEST_SERVER"))
		if len(command) == 0 {
			t.Fatal("set ETCD_TEST_SERVER (a server command taking etcd's flags) or ETCD_TEST_ENDPOINTS")
		}
		if cfg == nil {
			// Hold the lock from choosing ports until the server has bound them.
			portLock.Lock()
			defer portLock.Unlock()
			cfg = NewTestConfig(t)
		}
		endpoints = []string{startServer(t, command, cfg)}
	}

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}

// startServer runs command with etcd's flags for cfg, waits until it answers
// Status, and registers its shutdown. It returns the client URL.
func startServer(t testing.TB, command []string, cfg *embed.Config) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(cfg.Dir), 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(cfg.Dir), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(command[0], append(command[1:], flags(cfg)...)...)
	// etcd reads ETCD_* variables as flags and warns about unknown ones: keep ours out.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %v: %v", command, err)
	}
	// exited is closed when the process is gone (waitErr then holds why), so
	// any number of readers can wait on it.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("server log (%s):\n%s", logPath, tail(string(b), 40))
			}
		}
	})

	endpoint := cfg.AdvertiseClientUrls[0].String()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("server %v exited before it was ready: %v\n%s", command, waitErr, tail(string(b), 40))
		default:
		}
		if ready(endpoint) {
			return endpoint
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %v not ready at %s after 60s", command, endpoint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether the server at endpoint answers Status with a leader.
func ready(endpoint string) bool {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.Status(ctx, endpoint)
	return err == nil && st.Leader != 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
