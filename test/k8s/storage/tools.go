//go:build tools

// Keeps every package that k8s.io/apiserver/pkg/storage/etcd3's tests
// import (and that our replacement testserver imports) in go.mod and go.sum,
// so `go test -c` of that package needs no network.
package storage

import (
	_ "github.com/go-logr/logr"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/stretchr/testify/assert"
	_ "github.com/stretchr/testify/require"
	_ "go.etcd.io/etcd/api/v3/mvccpb"
	_ "go.etcd.io/etcd/client/v3/kubernetes"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "go.uber.org/zap/zaptest"
	_ "k8s.io/apimachinery/pkg/api/apitesting"
	_ "k8s.io/apiserver/pkg/apis/example/v1"
	_ "k8s.io/apiserver/pkg/features"
	_ "k8s.io/apiserver/pkg/storage/etcd3"
	_ "k8s.io/apiserver/pkg/storage/etcd3/testserver"
	_ "k8s.io/apiserver/pkg/storage/testing"
	_ "k8s.io/component-base/featuregate/testing"
	_ "k8s.io/component-base/metrics/testutil"
)
