package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// Verification codes: six digits, ten minutes, five tries, and only the newest works. A
// code lives in a Secret of the portal's namespace, named after what it verifies (the link
// or the organization, and the address), so that every replica sees the same code and the
// same count of tries, and asking again replaces the code before. Only an HMAC of the code
// is stored: six digits are too few to keep behind a plain hash.
const (
	codeDigits   = 6
	codeTTL      = 10 * time.Minute
	codeTries    = 5
	codeInterval = 30 * time.Second // the least time between two codes for one subject
	labelCode    = "org.roster.dev/verification-code"
	keyMAC       = "mac"
	keyExpires   = "expires"
	keyIssued    = "issued"
	keyTries     = "tries"
)

// codeResult is what checking a code found.
type codeResult int

const (
	codeOK codeResult = iota
	codeWrong
	codeExhausted // the fifth wrong try; ask for a new code
	codeExpired   // past ten minutes, replaced, or never sent
)

// codeBook issues and checks codes.
type codeBook struct {
	client    client.Client
	reader    client.Reader
	namespace string
	key       []byte
	clock     clock.PassiveClock
}

// errTooSoon: a new code was asked for within codeInterval of the last.
var errTooSoon = fmt.Errorf("a code was sent less than %d seconds ago", int(codeInterval.Seconds()))

func (b codeBook) name(subject string) string {
	return "portal-code-" + linktoken.Hash(subject)[:40]
}

func (b codeBook) mac(name, address, code string) string {
	m := hmac.New(sha256.New, b.key)
	fmt.Fprintf(m, "%s\x00%s\x00%s", name, address, code)
	return hex.EncodeToString(m.Sum(nil))
}

// issue makes a new code for subject, bound to the address it is sent to, replacing the one
// before. It refuses within codeInterval of the last, so that the codes, and the messages
// carrying them, cannot be asked for in a loop.
func (b codeBook) issue(ctx context.Context, subject, address string) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%0*d", codeDigits, n.Int64())
	name := b.name(subject)
	now := b.clock.Now()
	sec := &corev1.Secret{}
	err = b.reader.Get(ctx, client.ObjectKey{Namespace: b.namespace, Name: name}, sec)
	if client.IgnoreNotFound(err) != nil {
		return "", err
	}
	exists := err == nil
	if exists {
		if issued, perr := time.Parse(time.RFC3339Nano, string(sec.Data[keyIssued])); perr == nil && now.Sub(issued) < codeInterval {
			return "", errTooSoon
		}
	}
	sec.Name, sec.Namespace, sec.Type = name, b.namespace, corev1.SecretTypeOpaque
	sec.Labels = map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster, labelCode: "true"}
	sec.Data = map[string][]byte{
		keyMAC:     []byte(b.mac(name, address, code)),
		keyIssued:  []byte(now.UTC().Format(time.RFC3339Nano)),
		keyExpires: []byte(now.Add(codeTTL).UTC().Format(time.RFC3339Nano)),
		keyTries:   []byte("0"),
	}
	if exists {
		// The resourceVersion read makes two requests at once issue one code.
		err = b.client.Update(ctx, sec)
	} else {
		err = b.client.Create(ctx, sec)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return "", errTooSoon
	}
	return code, err
}

// check compares code with the newest for subject and address. Every wrong try is counted
// in the Secret with its resourceVersion, so replicas cannot give more than five between
// them; a right one uses the code up.
func (b codeBook) check(ctx context.Context, subject, address, code string) (result codeResult, left int, err error) {
	name := b.name(subject)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec := &corev1.Secret{}
		if err := b.reader.Get(ctx, client.ObjectKey{Namespace: b.namespace, Name: name}, sec); err != nil {
			if apierrors.IsNotFound(err) {
				result = codeExpired
				return nil
			}
			return err
		}
		tries, _ := strconv.Atoi(string(sec.Data[keyTries]))
		expires, perr := time.Parse(time.RFC3339Nano, string(sec.Data[keyExpires]))
		switch {
		case perr != nil || !b.clock.Now().Before(expires):
			result = codeExpired
			return nil
		case tries >= codeTries:
			result = codeExhausted
			return nil
		}
		if hmac.Equal([]byte(b.mac(name, address, code)), sec.Data[keyMAC]) {
			result = codeOK
			return b.client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion})
		}
		tries++
		sec.Data[keyTries] = []byte(strconv.Itoa(tries))
		result, left = codeWrong, codeTries-tries
		if tries >= codeTries {
			result = codeExhausted
		}
		return b.client.Update(ctx, sec)
	})
	return result, left, err
}

// sweep deletes codes past their time, which nobody will check any more.
func (b codeBook) sweep(ctx context.Context) error {
	list := &corev1.SecretList{}
	if err := b.reader.List(ctx, list, client.InNamespace(b.namespace), client.MatchingLabels{labelCode: "true"}); err != nil {
		return err
	}
	now := b.clock.Now()
	for i := range list.Items {
		s := &list.Items[i]
		if exp, err := time.Parse(time.RFC3339Nano, string(s.Data[keyExpires])); err != nil || now.After(exp) {
			_ = b.client.Delete(ctx, s, client.Preconditions{ResourceVersion: &s.ResourceVersion})
		}
	}
	return nil
}
