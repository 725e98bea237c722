/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"context"

	"github.com/go-logr/logr"
)

// LogNotifier "delivers" by logging the subject and recipient. It never
// logs the body: bodies carry links whose tokens grant access, and
// operator logs are read far more widely than a recipient's inbox.
type LogNotifier struct {
	// Logger receives one Info line per message.
	Logger logr.Logger
}

// Send implements Notifier. It ignores ch; the message is logged with the
// channel it was requested for.
func (n LogNotifier) Send(ctx context.Context, s Settings, ch Channel, msg Message) error {
	if err := ctx.Err(); err != nil {
		return transientf(ChannelLog, err, "%v", err)
	}
	r, err := render(s, msg, PartSubject)
	if err != nil {
		return withChannel(ChannelLog, err)
	}
	// An override may have put the link into the subject.
	subject := newRedactor(secretValues(msg)...).apply(r.Subject)
	n.Logger.Info("notification", "organization", s.Organization, "channel", ch,
		"template", msg.Template, "key", msg.Key, "subject", subject,
		"recipientName", msg.To.Name, "recipientEmail", msg.To.Email, "recipientPhone", msg.To.Phone)
	return nil
}
