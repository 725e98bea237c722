/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import "time"

const (
	// BackoffBase is the delay before the first retry of a transient failure.
	BackoffBase = 5 * time.Second
	// BackoffMax caps the delay so a channel that comes back is used again
	// within minutes, not hours.
	BackoffMax = 10 * time.Minute
)

// Backoff returns how long to wait before retry number attempt (0-based)
// after a transient failure: BackoffBase doubled per attempt, capped at
// BackoffMax. It has no jitter so requeue times are predictable and
// testable; controller-runtime's work queue already spreads reconciles.
func Backoff(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	d := BackoffBase
	for i := 0; i < attempt; i++ {
		d *= 2
		if d >= BackoffMax {
			return BackoffMax
		}
	}
	return d
}
