package install_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// knownMetrics are the series the manager exports (Roster's own, and controller-runtime's
// reconcile errors). Alerts and panels may use nothing else, so that a renamed metric fails
// here rather than leave an alert that can never fire.
var knownMetrics = []string{
	"roster_invitations",
	"roster_deliveries_total",
	"roster_delivery_seconds_bucket",
	"roster_delivery_seconds_sum",
	"roster_delivery_seconds_count",
	"roster_members_awaiting_approval",
	"roster_seats_used",
	"roster_seats_licensed",
	"roster_license_expiry_timestamp_seconds",
	"controller_runtime_reconcile_errors_total",
}

var promParser = parser.NewParser(parser.Options{})

// metricsOf parses a PromQL expression and returns the metric names it selects.
func metricsOf(expr string) ([]string, error) {
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		return nil, fmt.Errorf("%q selects no metric", expr)
	}
	return names, nil
}

func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	names, err := metricsOf(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	for _, n := range names {
		if !slices.Contains(knownMetrics, n) {
			t.Errorf("%s uses %q, which the manager does not export", where, n)
		}
	}
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// prometheusRule is read strictly, so that a misspelt field of a rule fails the test
// rather than being dropped.
type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// loadAlerts reads config/prometheus/prometheusrule.yaml, which the chart renders as it is
// (TestChartEqualsKustomize).
func loadAlerts(t *testing.T) map[string]alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "config/prometheus/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatal(err)
	}
	alerts := map[string]alertRule{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s has a rule that is not an alert", g.Name)
			}
			alerts[r.Alert] = r
		}
	}
	return alerts
}

// annotationFuncs stand in for the functions Prometheus gives alert templates, so that the
// templates' syntax and the functions they call are checked without a Prometheus.
var annotationFuncs = template.FuncMap{
	"humanize": fmt.Sprint, "humanizePercentage": fmt.Sprint, "humanizeDuration": fmt.Sprint,
}

// TestAlertRules loads the PrometheusRule: the three alerts a platform team needs are there,
// every expression parses and uses only metrics the manager exports, and every annotation is
// a template Prometheus can expand.
func TestAlertRules(t *testing.T) {
	alerts := loadAlerts(t)
	for _, want := range []string{"RosterDeliveriesFailing", "RosterSeatsExhausted", "RosterLicenseExpiringSoon"} {
		if _, ok := alerts[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
	for name, r := range alerts {
		checkExpr(t, name, r.Expr)
		if r.For == "" {
			t.Errorf("%s fires on a single evaluation; give it a for:", name)
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s has no severity", name)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s lacks a summary or description", name)
		}
		for key, text := range r.Annotations {
			// Prometheus defines $labels and $value before expanding an annotation.
			const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
			if _, err := template.New(key).Option("missingkey=zero").Funcs(annotationFuncs).Parse(defs + text); err != nil {
				t.Errorf("%s annotation %s: %v", name, key, err)
			}
		}
	}
}

// TestAlertsFire evaluates each alert's expression with Prometheus' own query engine over
// made-up series, written in promtool's series notation: it fires for the case it is for,
// with the labels its annotations use, and stays quiet otherwise.
func TestAlertsFire(t *testing.T) {
	alerts := loadAlerts(t)
	cases := []struct {
		alert, series string
		want          map[string]float64
	}{{
		// Email: 2 of 10 messages a minute fail; SMS: none do.
		alert: "RosterDeliveriesFailing",
		series: `
roster_deliveries_total{channel="email", result="sent"} 0+8x30
roster_deliveries_total{channel="email", result="failed"} 0+2x30
roster_deliveries_total{channel="sms", result="sent"} 0+10x30
roster_deliveries_total{channel="sms", result="failed"} 0+0x30`,
		want: map[string]float64{`{channel="email"}`: 0.2},
	}, {
		// support-portal has all 25 seats taken, on two manager replicas; wiki has room;
		// legacy has no license at all.
		alert: "RosterSeatsExhausted",
		series: `
roster_seats_used{namespace="acme", organization="acme", application="support-portal", instance="a"} 25x30
roster_seats_licensed{namespace="acme", organization="acme", application="support-portal", instance="a"} 25x30
roster_seats_used{namespace="acme", organization="acme", application="support-portal", instance="b"} 25x30
roster_seats_licensed{namespace="acme", organization="acme", application="support-portal", instance="b"} 25x30
roster_seats_used{namespace="acme", organization="acme", application="wiki", instance="a"} 10x30
roster_seats_licensed{namespace="acme", organization="acme", application="wiki", instance="a"} 25x30
roster_seats_used{namespace="acme", organization="acme", application="legacy", instance="a"} 0x30
roster_seats_licensed{namespace="acme", organization="acme", application="legacy", instance="a"} 0x30`,
		want: map[string]float64{`{application="support-portal", namespace="acme", organization="acme"}`: 25},
	}, {
		// At 30m (1800 s), support-portal's license ends in about 11.5 days, wiki's in
		// about 57, and old-wiki's has ended.
		alert: "RosterLicenseExpiringSoon",
		series: `
roster_license_expiry_timestamp_seconds{namespace="acme", organization="acme", application="support-portal"} 1000000x30
roster_license_expiry_timestamp_seconds{namespace="acme", organization="acme", application="wiki"} 5000000x30
roster_license_expiry_timestamp_seconds{namespace="acme", organization="acme", application="old-wiki"} 800x30`,
		want: map[string]float64{
			`{application="support-portal", namespace="acme", organization="acme"}`: 1000000 - 1800,
			`{application="old-wiki", namespace="acme", organization="acme"}`:       800 - 1800,
		},
	}, {
		// The invitation controller fails once a minute; so does another operator's
		// controller, which is not Roster's business.
		alert: "RosterReconcileErrors",
		series: `
controller_runtime_reconcile_errors_total{job="roster-manager-metrics", controller="invitation"} 0+1x30
controller_runtime_reconcile_errors_total{job="roster-manager-metrics", controller="member"} 0x30
controller_runtime_reconcile_errors_total{job="other-operator", controller="widget"} 0+1x30`,
		want: map[string]float64{`{controller="invitation"}`: 1.0 / 60},
	}}
	for _, c := range cases {
		t.Run(c.alert, func(t *testing.T) {
			r, ok := alerts[c.alert]
			if !ok {
				t.Fatalf("no alert %s", c.alert)
			}
			if got := eval(t, load(t, c.series), r.Expr, 30*time.Minute); !sameResult(got, c.want) {
				t.Errorf("%s fires for %v, want %v", c.alert, got, c.want)
			}
		})
	}
}

type dashboardPanel struct {
	Title   string                  `json:"title"`
	Type    string                  `json:"type"`
	Targets []struct{ Expr string } `json:"targets"`
	Panels  []dashboardPanel        `json:"panels"`
}

// grafanaVariables are replaced by something PromQL accepts before parsing: the range
// Grafana picks, and "any value" for the dashboard's namespace and organization choices.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*", "$organization", ".*")

// TestDashboard loads the Grafana dashboard: every panel's queries parse and use only
// metrics the manager exports, and every exported metric is on some panel.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "config/prometheus/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string           `json:"title"`
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard needs a title and a uid, so that Grafana updates it in place")
	}
	shown := map[string]bool{}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, target := range p.Targets {
				expr := grafanaVariables.Replace(target.Expr)
				checkExpr(t, "panel "+p.Title, expr)
				names, _ := metricsOf(expr)
				for _, n := range names {
					shown[n] = true
				}
			}
		}
	}
	walk(d.Panels)
	for _, m := range knownMetrics {
		if !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	// Variables' queries are Grafana's label_values(selector, label), not PromQL; their
	// selectors still have to be.
	labelValues := regexp.MustCompile(`^label_values\((.+), *\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Definition == "" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		checkExpr(t, "variable "+v.Name, grafanaVariables.Replace(m[1]))
	}
}

// TestDashboardConfigMap checks that the dashboard reaches Grafana's sidecar from both
// install forms: a ConfigMap labelled grafana_dashboard with the file as it is.
func TestDashboardConfigMap(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "config/prometheus/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "core/ConfigMap roster-system/roster-dashboard"
	for name, r := range map[string]rendering{"config/prometheus": kustomize(t, "prometheus"), "chart": helm(t, helmOptions{})} {
		cm, ok := r[key]
		if !ok {
			t.Errorf("%s renders no %s", name, key)
			continue
		}
		if labelsOf(cm)["grafana_dashboard"] != "1" {
			t.Errorf("%s: %s is not labelled grafana_dashboard=1", name, key)
		}
		if got := cm["data"].(map[string]any)["roster.json"]; got != string(b) {
			t.Errorf("%s: roster.json is not dashboard.json", name)
		}
	}
}
