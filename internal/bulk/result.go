package bulk

// Outcome is what a bulk operation did with one row or object.
type Outcome string

const (
	// Created: the row's Invitation was created (or, in a dry run, would be).
	Created Outcome = "created"
	// Skipped: the row's Invitation already exists, from an earlier import of the same
	// person; it is left as it is so nobody is invited twice.
	Skipped Outcome = "skipped"
	// Invalid: the row is not a valid invitation and was left out (ImportOptions.SkipInvalid).
	Invalid Outcome = "invalid"
	// Updated: the row's person was already there and the import changed their details.
	Updated Outcome = "updated"
	// Deleted: the object was deleted (or, in a dry run, would be).
	Deleted Outcome = "deleted"
	// Changed: the object was patched.
	Changed Outcome = "changed"
	// Unchanged: the object already was as asked, or there is nothing to do for it.
	Unchanged Outcome = "unchanged"
	// Failed: the API server refused the row or object, or it could not be chosen; the
	// message says why.
	Failed Outcome = "failed"
)

// RowResult is what Import did with one row of the file.
type RowResult struct {
	// Line is the file's line the row starts on, counting the header as line 1.
	Line int
	// Invitee is the email or phone the invitation goes to.
	Invitee string
	// Invitation is the name of the row's Invitation, or of its ExternalUser in a client
	// import; empty for an invalid row.
	Invitation string
	// Outcome is what happened.
	Outcome Outcome
	// Message explains a skipped, invalid or failed row, with the API server's own words
	// when it refused it.
	Message string
}

// ImportResult is what Import did, row by row in file order.
type ImportResult struct {
	// DryRun tells that nothing was stored: created rows are what would have been created.
	DryRun bool
	// Rows are the rows of the file in line order, blank rows left out.
	Rows []RowResult
	// Format is the kind of file that was read.
	Format Format
	// Stopped is set when the server's daily import quota ended the import part way: the
	// rows from Stopped.Line on that were not in already are Failed and were not sent.
	Stopped *QuotaStop
}

// With returns the rows with outcome o, in line order.
func (r ImportResult) With(o Outcome) []RowResult { return withOutcome(r.Rows, o) }

// OK reports whether every row went in or was already in: no row failed or was invalid.
func (r ImportResult) OK() bool {
	return len(r.With(Failed)) == 0 && len(r.With(Invalid)) == 0
}

// ObjectResult is what a bulk change did to one object.
type ObjectResult struct {
	// Name is the object's name.
	Name string
	// Outcome is what happened.
	Outcome Outcome
	// Message says what changed, why nothing did, or why it failed.
	Message string
}

// EditResult is what a bulk change (Edit, Approve, Reject, Restore, Terminate, Resend) did,
// object by object in name order.
type EditResult struct {
	// Objects are the chosen objects, and the names asked for that could not be chosen.
	Objects []ObjectResult
}

// With returns the objects with outcome o, in name order.
func (r EditResult) With(o Outcome) []ObjectResult { return withOutcome(r.Objects, o) }

func (r RowResult) outcome() Outcome    { return r.Outcome }
func (r ObjectResult) outcome() Outcome { return r.Outcome }

// withOutcome keeps the results with outcome o, in their order.
func withOutcome[T interface{ outcome() Outcome }](results []T, o Outcome) []T {
	var out []T
	for _, r := range results {
		if r.outcome() == o {
			out = append(out, r)
		}
	}
	return out
}

// OK reports whether nothing failed.
func (r EditResult) OK() bool { return len(r.With(Failed)) == 0 }
