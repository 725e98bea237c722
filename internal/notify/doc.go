/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package notify renders Roster's notification templates and delivers them
// to people over email (SMTP), SMS and webhook channels on behalf of an
// organization.
//
// Controllers call Notifier.Send from their reconcile loops, which may run
// the same send more than once. Every message therefore carries an
// idempotency key that is turned into a deterministic email Message-ID and an
// HTTP Idempotency-Key header, so receivers can drop duplicates.
//
// Failures come back as errors that IsPermanent classifies: permanent ones
// need a configuration or data change, transient ones are worth retrying
// after Backoff. Error text ends up in Kubernetes status, which many people
// can read, so it never contains credentials, invitation links or codes.
package notify
