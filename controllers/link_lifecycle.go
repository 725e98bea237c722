package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every link Roster hands out, an invitation's or an external user's individual one, lives
// the same way: it is issued for a generation (a send, or a rotation an admin asked for),
// delivered, works until it expires, and is used once. Issuing a new generation replaces
// the token, so the old link dies. The deciders of both kinds ask linkFacts.stage where
// their link is and act on the answer.

// linkStage is where a link is in its life.
type linkStage int

const (
	// linkWanted: there is no link for the generation asked for; issue one.
	linkWanted linkStage = iota
	// linkLive: the link works.
	linkLive
	// linkExpired: the link ran out unused; only a new generation gives a working one.
	linkExpired
	// linkUsed: the person used the link; it opens nothing any more.
	linkUsed
)

// linkFacts is what a decider knows of its object's link.
type linkFacts struct {
	// Used: the person signed up or registered with it.
	Used bool
	// Issued: a link for the generation asked for exists.
	Issued bool
	// ExpiresAt is when the issued link stops working; nil for one issued before links
	// expired, which the decider gives an expiry from now.
	ExpiresAt *metav1.Time
}

// stage is where the link is at now. A link expires at the exact instant ExpiresAt names.
func (l linkFacts) stage(now time.Time) linkStage {
	switch {
	case l.Used:
		return linkUsed
	case !l.Issued:
		return linkWanted
	case l.ExpiresAt != nil && !now.Before(l.ExpiresAt.Time):
		return linkExpired
	}
	return linkLive
}

// linkExpiry is when a link issued at now, to work for ttl, stops working.
func linkExpiry(now time.Time, ttl time.Duration) *metav1.Time {
	t := metav1.NewTime(stamp(now).Add(ttl))
	return &t
}
