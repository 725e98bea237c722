package bulk_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// BenchmarkImportClients imports 10,000 clients into a fresh namespace of a local API
// server (no admission webhooks) per iteration and reports rows/s, the throughput an admin
// sees from `kubectl roster import clients` apart from the webhooks' own time.
func BenchmarkImportClients(b *testing.B) {
	const rows = 10000
	env := testenv.New(false)
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	// The plugin's own client limits (kubeClient in cmd/kubectl-roster).
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: rig.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	var file strings.Builder
	file.WriteString("firstName,lastName,email,phone,role,team\n")
	for i := range rows {
		fmt.Fprintf(&file, "Client,%d,client%d@partner.example,+4915100%06d,Buyer,\n", i, i, i)
	}
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
		if err := c.Create(ctx, ns); err != nil {
			b.Fatal(err)
		}
		org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "acme"},
			Spec: rosterv1.OrganizationSpec{DisplayName: "Acme", Applications: []rosterv1.Application{{Name: "support"}}}}
		if err := c.Create(ctx, org); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := bulk.ImportClients(ctx, c, ns.Name, "acme", "support", strings.NewReader(file.String()), bulk.ClientImportOptions{})
		total += time.Since(start)
		if err != nil || len(res.With(bulk.Created)) != rows {
			b.Fatalf("import: %v; %d created", err, len(res.With(bulk.Created)))
		}
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
}
