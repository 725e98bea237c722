package notify

import (
	"errors"
	"fmt"
	"text/template/parse"
)

// An organization's template overrides are a tenant's code run in the manager. Output is
// capped, and the constructs that make work grow without output are refused before anything
// runs: more than a few template calls (nesting them doubles the work at every level) and
// ranging over anything but a field (range 1000000000 loops without printing).
const (
	// MaxRenderedBytes bounds one rendered part of a message.
	MaxRenderedBytes = 256 << 10
	// maxTemplateCalls bounds the {{template}} and {{block}} actions of one part, layout
	// included; the built-in ones use two.
	maxTemplateCalls = 16
)

// errTooLarge stops a rendering that outgrew MaxRenderedBytes.
var errTooLarge = errors.New("the rendered message is larger than 256 KiB")

// cappedBuffer collects output until MaxRenderedBytes, then fails every write.
type cappedBuffer struct{ b []byte }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if len(c.b)+len(p) > MaxRenderedBytes {
		return 0, errTooLarge
	}
	c.b = append(c.b, p...)
	return len(p), nil
}

func (c *cappedBuffer) String() string { return string(c.b) }

// checkBounded refuses trees whose execution could grow without bound.
func checkBounded(trees []*parse.Tree) error {
	calls := 0
	var walk func(n parse.Node) error
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.IfNode:
			return walkBranch(walk, &n.BranchNode)
		case *parse.WithNode:
			return walkBranch(walk, &n.BranchNode)
		case *parse.RangeNode:
			if !rangesOverField(n.Pipe) {
				return fmt.Errorf("line %d: range may only go over a field of the message, such as {{range .Items}}", n.Line)
			}
			return walkBranch(walk, &n.BranchNode)
		case *parse.TemplateNode:
			if calls++; calls > maxTemplateCalls {
				return fmt.Errorf("line %d: more than %d template calls", n.Line, maxTemplateCalls)
			}
		}
		return nil
	}
	for _, t := range trees {
		if t == nil {
			continue
		}
		if err := walk(t.Root); err != nil {
			return fmt.Errorf("%s: %w", t.ParseName, err)
		}
	}
	return nil
}

func walkBranch(walk func(parse.Node) error, b *parse.BranchNode) error {
	if err := walk(b.List); err != nil {
		return err
	}
	return walk(b.ElseList)
}

// rangesOverField reports whether a range pipeline is one field or variable reference.
func rangesOverField(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode, *parse.VariableNode, *parse.ChainNode, *parse.DotNode:
		return true
	}
	return false
}

// treesOf is the parse trees of a template set, text or HTML alike.
func treesOf[T any](ts []T, tree func(T) *parse.Tree) []*parse.Tree {
	out := make([]*parse.Tree, 0, len(ts))
	for _, t := range ts {
		out = append(out, tree(t))
	}
	return out
}
