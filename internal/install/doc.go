// Package install holds the tests that keep Roster's two install forms, the kustomize
// configuration in config/ and the Helm chart in charts/roster, rendering the same objects;
// that apply that rendering to a real API server and run the manager and the portal as their
// ServiceAccounts with exactly the rendered RBAC; and that check the alerts and the dashboard
// shipped with them against the metrics the manager exports. It has no code of its own: the
// Helm SDK and the PromQL parser are needed only by its tests.
package install
