/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The scrubber is the last line of defence for errors built from text a
// server or library produced; exercise it directly, since well-behaved
// channels never hand it a secret.
func TestScrubRemovesSecretsFromAnyError(t *testing.T) {
	link := "https://portal.example.com/invite?token=abc"
	r := newRedactor(link, "hunter2", "", "  ")
	for _, err := range []error{
		fmt.Errorf("server said: bad link %s (auth hunter2)", link),
		transientf(ChannelEmail, context.Canceled, "reply: %s", link),
		fmt.Errorf("wrapped: %w", permanentf(ChannelSMS, nil, "echo hunter2")),
	} {
		got := r.scrub(ChannelEmail, err)
		if strings.Contains(got.Error(), link) || strings.Contains(got.Error(), "hunter2") || !strings.Contains(got.Error(), redacted) {
			t.Errorf("scrub(%q) = %q", err, got)
		}
		if IsPermanent(got) != IsPermanent(err) {
			t.Errorf("scrub changed permanence of %q", err)
		}
	}
	if got := r.scrub(ChannelEmail, transientf(ChannelEmail, context.Canceled, "x")); !errors.Is(got, context.Canceled) {
		t.Errorf("scrub lost the cause: %v", got)
	}
	if r.scrub(ChannelEmail, nil) != nil {
		t.Error("scrub(nil) != nil")
	}
	// A secret containing another is removed whole.
	if got := newRedactor("abc", "xxabcxx").apply("-xxabcxx-"); got != "-"+redacted+"-" {
		t.Errorf("apply = %q", got)
	}
}
