package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// Loading a hundred thousand members through the API server costs what Roster's controllers
// do for each (a Claim, labels, the status): over an hour on a small machine, far beyond the
// ten minutes the benchmark may take. The memory and admission measurements are about a
// manager that finds those objects already there, as after a restart, not about how they got
// there (the throughput measurements time that). So a few members and external users go the
// whole way through the API server and Roster's controllers, and the rest are copies of what
// those templates became, written straight into etcd with their own names, addresses, UIDs
// and link tokens. The API server reads them from etcd as it reads its own writes. Whether
// the copies are what the controllers would have made is checked, not assumed: the manager
// that starts on them must make no write for them (catchUpWrites).
//
// Members' username Claims are not copied. The manager never caches Claims (it reads them
// past its cache, when it claims), and a member's status says its username is claimed, so
// nothing measured reads them; copied, they would double what the API server must take in
// before the manager may start, and that wait is most of the time a copy takes.

// etcdWriter puts objects into the API server's etcd through etcd's JSON gateway.
type etcdWriter struct {
	url  string // etcd's client URL
	http *http.Client
}

// registryKey is where the API server keeps an object in etcd (its default --etcd-prefix):
// /registry/<group>/<resource>/[<namespace>/]<name>, without the group for the core group.
func registryKey(group, resource, namespace, name string) string {
	k := "/registry/"
	if group != "" {
		k += group + "/"
	}
	k += resource + "/"
	if namespace != "" {
		k += namespace + "/"
	}
	return k + name
}

type etcdPut struct {
	key   string
	value []byte
}

// put writes the objects in transactions of at most 100 puts (etcd's limit is 128).
func (w etcdWriter) put(ctx context.Context, puts []etcdPut) error {
	for len(puts) > 0 {
		n := min(len(puts), 100)
		type requestPut struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		type op struct {
			RequestPut requestPut `json:"requestPut"`
		}
		ops := make([]op, 0, n)
		for _, p := range puts[:n] {
			ops = append(ops, op{requestPut{base64.StdEncoding.EncodeToString([]byte(p.key)), base64.StdEncoding.EncodeToString(p.value)}})
		}
		body, err := json.Marshal(map[string]any{"success": ops})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/v3/kv/txn", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := w.http.Do(req)
		if err != nil {
			return fmt.Errorf("etcd txn: %w", err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd txn: %s: %s", resp.Status, msg)
		}
		puts = puts[n:]
	}
	return nil
}

// cloneSet is one template object and the objects that came with it (its link Secret), read
// back from the API server once the manager had finished with them.
type cloneSet struct {
	name    string // the template's name, replaced by each copy's in every string
	uid     string
	hash    string // its link token's hash, if it has one
	objects []*unstructured.Unstructured
}

// copyFor is the template's objects as copy name would have them.
func (s cloneSet) copyFor(name string) ([]etcdPut, error) {
	uid := string(uuid.NewUUID())
	hash := ""
	if s.hash != "" {
		_, h, err := linktoken.New()
		if err != nil {
			return nil, err
		}
		hash = h
	}
	// UIDs and hashes are random, so they are replaced wherever they occur, in delivery
	// keys too; so is the template's name, in addresses, Secret names and messages.
	pairs := []string{s.uid, uid, s.name, name}
	if s.hash != "" {
		pairs = append(pairs, s.hash, hash, linktoken.LabelValue(s.hash), linktoken.LabelValue(hash))
	}
	replace := strings.NewReplacer(pairs...).Replace
	var puts []etcdPut
	for _, t := range s.objects {
		o := t.DeepCopy()
		o.Object = rewriteStrings(o.Object, replace).(map[string]any)
		o.SetResourceVersion("")
		o.SetCreationTimestamp(t.GetCreationTimestamp())
		if o.GetKind() == "Secret" {
			data, _, _ := unstructured.NestedMap(t.Object, "data")
			out := map[string]any{}
			for k, v := range data {
				raw, err := base64.StdEncoding.DecodeString(v.(string))
				if err != nil {
					return nil, err
				}
				out[k] = base64.StdEncoding.EncodeToString([]byte(replace(string(raw))))
			}
			o.Object["data"] = out
		}
		raw, err := json.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		gv := o.GroupVersionKind()
		puts = append(puts, etcdPut{key: registryKey(gv.Group, resourceOf[gv.Kind], o.GetNamespace(), o.GetName()), value: raw})
	}
	return puts, nil
}

var resourceOf = map[string]string{"Member": "members", "ExternalUser": "externalusers", "Secret": "secrets"}

// rewriteStrings applies f to every string in a JSON value.
func rewriteStrings(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = rewriteStrings(x, f)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = rewriteStrings(x, f)
		}
		return out
	}
	return v
}

// templates reads back, through the API server, what Roster made of each template: the
// Member or ExternalUser, and the Secrets that are its.
func templates(ctx context.Context, c client.Client, kind string, namespace string, names []string) ([]cloneSet, error) {
	var sets []cloneSet
	for _, name := range names {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(rosterv1.GroupVersion.String())
		o.SetKind(kind)
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, o); err != nil {
			return nil, err
		}
		set := cloneSet{name: name, uid: string(o.GetUID()), objects: []*unstructured.Unstructured{o}}
		if kind == "ExternalUser" {
			secrets := &unstructured.UnstructuredList{}
			secrets.SetAPIVersion("v1")
			secrets.SetKind("SecretList")
			if err := c.List(ctx, secrets, client.InNamespace(namespace)); err != nil {
				return nil, err
			}
			for i := range secrets.Items {
				sec := &secrets.Items[i]
				for _, ref := range sec.GetOwnerReferences() {
					if ref.UID == o.GetUID() {
						set.objects = append(set.objects, sec)
						hash, _, _ := unstructured.NestedString(sec.Object, "data", linktoken.SecretKeyHash)
						raw, _ := base64.StdEncoding.DecodeString(hash)
						set.hash = string(raw)
					}
				}
			}
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// cloneLoad writes n copies of the template sets into etcd, copy i from set i%len(sets) and
// named by name(i), and logs its progress. Batches are made here and written by a few
// writers at once: one alone waits on each transaction's round trip.
func (b *bench) cloneLoad(ctx context.Context, p *plane, what string, sets []cloneSet, from, n int, name func(i int) string) (time.Duration, error) {
	w := etcdWriter{url: p.rig.Env.ControlPlane.Etcd.URL.String(), http: &http.Client{Timeout: time.Minute}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const writers = 4
	batches := make(chan []etcdPut, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for batch := range batches {
				if err := w.put(ctx, batch); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	start := time.Now()
	last := start
	var batch []etcdPut
	var err error
	for i := from; i < n && ctx.Err() == nil; i++ {
		var puts []etcdPut
		if puts, err = sets[i%len(sets)].copyFor(name(i)); err != nil {
			break
		}
		batch = append(batch, puts...)
		if len(batch) >= 2000 || i == n-1 {
			select {
			case batches <- batch:
			case <-ctx.Done():
			}
			batch = nil
		}
		if time.Since(last) > 15*time.Second {
			last = time.Now()
			b.logf("  %s: %s of %s written to etcd", what, thousands(i+1), thousands(n))
		}
	}
	close(batches)
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	if err == nil {
		err = ctx.Err()
	}
	return time.Since(start), err
}
