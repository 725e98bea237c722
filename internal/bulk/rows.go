package bulk

import (
	"context"
	"fmt"
	"sync"
)

// defaultWorkers is how many rows an import sends to the API server at once when the caller
// does not say: rows are independent, and one at a time a file of ten thousand takes minutes.
const defaultWorkers = 8

// interruptedMessage is the message of the rows an import did not send because it was
// interrupted.
const interruptedMessage = "not imported: the import was interrupted"

// rowJob is what one import does with its rows: do sends one; skip judges one after the
// daily quota stopped the import (people already in are told apart, the rest are not
// sent); interrupted is a row never sent because the context ended.
type rowJob[R any] struct {
	workers     int
	progress    func(done, total int)
	do          func(ctx context.Context, row R) (RowResult, *QuotaStop)
	skip        func(row R) RowResult
	interrupted func(row R) RowResult
}

// run sends the rows with job.workers at once, in file order, and returns their results in
// the same order and the first row the quota refused. Rows handed out after that refusal are
// skipped, not sent; the few already under way when it came may be refused too, and say so.
func (job rowJob[R]) run(ctx context.Context, rows []R) ([]RowResult, *QuotaStop, error) {
	results := make([]RowResult, len(rows))
	var (
		mu      sync.Mutex
		done    int
		stopped *QuotaStop
		wg      sync.WaitGroup
	)
	next := make(chan int)
	workers := job.workers
	if workers <= 0 {
		workers = defaultWorkers
	}
	for range min(workers, max(len(rows), 1)) {
		wg.Go(func() {
			for i := range next {
				mu.Lock()
				quota := stopped
				mu.Unlock()
				var rr RowResult
				var q *QuotaStop
				if quota != nil {
					rr = job.skip(rows[i])
				} else {
					rr, q = job.do(ctx, rows[i])
				}
				mu.Lock()
				results[i] = rr
				if q != nil && (stopped == nil || q.Line < stopped.Line) {
					stopped = q
				}
				done++
				if job.progress != nil {
					job.progress(done, len(rows))
				}
				mu.Unlock()
			}
		})
	}
	var ctxErr error
	for i := range rows {
		if ctxErr = ctx.Err(); ctxErr != nil {
			for j := i; j < len(rows); j++ {
				results[j] = job.interrupted(rows[j])
			}
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if ctxErr != nil {
		return results, stopped, fmt.Errorf("import interrupted: %w", ctxErr)
	}
	return results, stopped, nil
}
