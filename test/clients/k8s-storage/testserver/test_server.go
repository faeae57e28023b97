// Replacement for k8s.io/apiserver/pkg/storage/etcd3/testserver, written for
// etcd-ts (see ../README.md). The upstream package starts an embedded etcd in
// the test process; this one keeps its exported API (NewTestConfig, RunEtcd)
// but starts an EXTERNAL server process for every call — a fresh member on
// free ports with its own data directory, exactly as the embedded one is fresh
// — so Kubernetes' own storage tests run unchanged against real etcd or ours.
//
// The server command comes from ETCDTS_STORAGE_SERVER, split on spaces, e.g.
//   ETCDTS_STORAGE_SERVER=/path/to/.tools/bin/etcd
//   ETCDTS_STORAGE_SERVER="node /path/to/dist/node/src/main.js"
// and is given etcd's flags. Fields of the embed.Config the tests set are
// passed on as flags (WatchProgressNotifyInterval); the rest of the embedded
// configuration has no external equivalent and is ignored.
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
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

func getAvailablePorts(count int) ([]int, error) {
	ports := []int{}
	for i := 0; i < count; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("could not bind to a port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// NewTestConfig returns a configuration describing the member RunEtcd starts:
// free client and peer ports and a temporary data directory.
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	ports, err := getAvailablePorts(2)
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
	cfg.Dir = t.TempDir()
	os.Chmod(cfg.Dir, 0700)
	return cfg
}

var autoPortLock sync.Mutex

func serverCommand(t testing.TB) []string {
	cmd := strings.Fields(os.Getenv("ETCDTS_STORAGE_SERVER"))
	if len(cmd) == 0 {
		t.Fatal("ETCDTS_STORAGE_SERVER is not set: it names the etcd (or etcd-ts) server command to test against")
	}
	return cmd
}

// RunEtcd starts a fresh external server with cfg's ports, data directory and
// watch progress interval (or NewTestConfig(t) if nil), and returns a client
// connected to it. The server is stopped when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	if cfg == nil {
		autoPortLock.Lock()
		defer autoPortLock.Unlock()
		cfg = NewTestConfig(t)
	}
	clientURL := cfg.ListenClientUrls[0].String()
	peerURL := cfg.ListenPeerUrls[0].String()
	argv := serverCommand(t)
	args := append(argv[1:],
		"--name", cfg.Name,
		"--data-dir", filepath.Join(cfg.Dir, "member-data"),
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", cfg.Name+"="+peerURL,
		"--initial-cluster-state", "new",
	)
	if cfg.WatchProgressNotifyInterval > 0 {
		args = append(args, "--watch-progress-notify-interval", cfg.WatchProgressNotifyInterval.String())
	}
	logPath := filepath.Join(cfg.Dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		// Stop this process (by its PID) and wait for it.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   []string{clientURL},
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("server exited before becoming ready (%v):\n%s", err, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := client.Status(ctx, clientURL)
		cancel()
		if err == nil && st.Leader != 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("server not ready after 60 s (last error %v):\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}
