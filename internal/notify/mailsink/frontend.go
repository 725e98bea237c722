/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package mailsink

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The sink must be at least as strict as the servers Roster talks to in
// production, or a client bug passes every test and fails only in front of
// a real customer: that is how "MAIL FROM:addr" without angle brackets
// shipped. go-smtp's parser accepts a path with or without brackets and
// strips them before the Session sees it, so the check cannot live in the
// Session. Instead every client connection is served by a relay that owns
// the socket, reads one command line at a time, answers malformed MAIL and
// RCPT commands itself, and passes everything else to go-smtp over an
// in-memory pipe. go-smtp keeps doing all the rest of the protocol (EHLO,
// AUTH, DATA, limits, error codes), so the sink's behaviour is unchanged
// apart from the stricter syntax.
//
// go-smtp decides whether a connection is encrypted by asking whether it is
// a *tls.Conn, and it does the STARTTLS upgrade itself. The relay therefore
// mirrors TLS on the pipe: when the client's connection is TLS (implicit,
// or after a STARTTLS that go-smtp accepted), the relay also speaks TLS to
// go-smtp, with the sink's own certificate. The second handshake costs a
// millisecond and keeps Mail.TLS, the AUTH-only-after-STARTTLS rule and
// "Already running in TLS" exactly as go-smtp implements them.

// ioTimeout bounds every read and write on a client connection and every
// write to go-smtp, so a silent client or a wedged session cannot hold a
// relay goroutine forever. It is the idle timeout the sink always had.
const ioTimeout = time.Minute

// replySyntaxError is RFC 5321 §4.2.3's answer to a command whose
// arguments do not follow the grammar; §4.1.1.2 and §4.1.1.3 require
// the path in angle brackets directly after the colon.
const replySyntaxError = "501 5.5.4 Syntax error in parameters or arguments\r\n"

const replyIdleTimeout = "421 4.4.2 Idle timeout, bye bye\r\n"

// envelopeVerb returns "MAIL" or "RCPT" when line is one of those commands,
// splitting the verb from its argument by go-smtp's own rule (four letters,
// then a space or the end of the line), so the relay judges exactly the
// lines go-smtp would handle as MAIL or RCPT; anything else returns "".
func envelopeVerb(line string) string {
	if len(line) < 4 || (len(line) > 4 && line[4] != ' ') {
		return ""
	}
	switch verb := strings.ToUpper(line[:4]); verb {
	case "MAIL", "RCPT":
		return verb
	}
	return ""
}

// validEnvelope reports whether a MAIL or RCPT command line (without its
// line ending) follows RFC 5321 §4.1.1.2/§4.1.1.3:
//
//	"MAIL FROM:" Reverse-path [SP Mail-parameters]
//	"RCPT TO:" Forward-path [SP Rcpt-parameters]
//
// The path must be in angle brackets and follow the colon without a space.
// "<>" is only a valid reverse path. What lies inside the brackets and in
// the parameters is left to go-smtp, which already parses both strictly.
func validEnvelope(verb, line string) bool {
	prefix := "MAIL FROM:"
	if verb == "RCPT" {
		prefix = "RCPT TO:"
	}
	if len(line) < len(prefix) || !strings.EqualFold(line[:len(prefix)], prefix) {
		return false
	}
	rest := line[len(prefix):]
	end, ok := pathEnd(rest)
	if !ok || (verb == "RCPT" && end == 1) {
		return false
	}
	rest = rest[end+1:]
	return rest == "" || rest[0] == ' '
}

// pathEnd returns the index of the '>' that closes the path at the start of
// s. A '>' inside a quoted local part does not close it; whitespace or a
// second '<' outside quotes makes the path malformed.
func pathEnd(s string) (int, bool) {
	if s == "" || s[0] != '<' {
		return 0, false
	}
	quoted := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '>':
			return i, true
		case c == ' ', c == '\t', c == '<':
			return 0, false
		}
	}
	return 0, false
}

// bdatSize returns the chunk size of a BDAT argument when go-smtp would
// accept it and then read the chunk; for any other argument go-smtp
// replies without reading one, and so must the relay.
func bdatSize(arg string) (int64, bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || (len(f) == 2 && !strings.EqualFold(f[1], "LAST")) {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// dotState follows the end-of-data state machine of go-smtp's DATA reader
// (taken from net/textproto), so the relay forwards a message body up to
// exactly the byte where go-smtp stops reading it and treats the next line
// as a command again.
type dotState int

const (
	dotBeginLine dotState = iota
	dotDot
	dotDotCR
	dotCR
	dotData
	dotEOF
)

// feed advances the state over b and reports whether the body ended; the
// end can only come at a '\n', so callers feed whole lines.
func (st *dotState) feed(b []byte) bool {
	for _, c := range b {
		switch *st {
		case dotBeginLine:
			switch c {
			case '.':
				*st = dotDot
			case '\r':
				*st = dotCR
			default:
				*st = dotData
			}
		case dotDot:
			if c == '\r' {
				*st = dotDotCR
			} else {
				*st = dotData
			}
		case dotDotCR:
			if c == '\n' {
				*st = dotEOF
				return true
			}
			*st = dotData
		case dotCR:
			if c == '\n' {
				*st = dotBeginLine
			} else {
				*st = dotData
			}
		case dotData:
			if c == '\r' {
				*st = dotCR
			}
		}
	}
	return false
}

// pipeListener hands the server ends of the relays' pipes to go-smtp's
// Serve, which only knows how to take connections from a net.Listener.
type pipeListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener(addr net.Addr) *pipeListener {
	return &pipeListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next relayed connection.
func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; it may be called more than once.
func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the TCP address clients connect to.
func (l *pipeListener) Addr() net.Addr { return l.addr }

func (l *pipeListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// addrConn lets go-smtp see the client's real addresses instead of the
// pipe's.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// reply is one complete SMTP reply from go-smtp, ready for the wire.
type reply struct {
	code int
	text string
}

// readReply reads a possibly multi-line reply.
func readReply(tp *textproto.Reader) (reply, error) {
	var b strings.Builder
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return reply{}, err
		}
		if len(line) < 3 {
			return reply{}, errors.New("mailsink: short reply from go-smtp")
		}
		b.WriteString(line)
		b.WriteString("\r\n")
		if len(line) == 3 || line[3] != '-' {
			code, err := strconv.Atoi(line[:3])
			if err != nil {
				return reply{}, err
			}
			return reply{code: code, text: b.String()}, nil
		}
	}
}

// relay serves one client connection; see the comment at the top of this
// file. It is lock-step: a command's reply is relayed before the next
// command is read, which keeps the relay's own 501 replies in order with
// go-smtp's even when the client pipelines.
type relay struct {
	raw      net.Conn          // the TCP connection
	client   net.Conn          // raw, or TLS on top of it
	cr       *bufio.Reader     // reads client
	pipe     net.Conn          // relay's end of the pipe
	inner    net.Conn          // pipe, or TLS on top of it
	pipes    *pipeListener     // go-smtp accepts the other end here
	tlsSrv   *tls.Config       // the sink's certificate, for clients
	tlsInner *tls.Config       // trusts only the sink, for talking to go-smtp
	replies  chan reply        // from the reader goroutine
	handoff  atomic.Bool       // reader stops after the next reply
	gone     atomic.Bool       // go-smtp closed its end
	running  bool              // reader goroutine is running
	innerTP  *textproto.Reader // reads inner; owned by the reader while running
}

func (r *relay) serve(implicitTLS bool) {
	defer r.finish()
	if implicitTLS {
		tc := tls.Server(r.raw, r.tlsSrv)
		if !handshake(tc) {
			return
		}
		r.client = tc
	}
	r.cr = bufio.NewReader(r.client)

	pipe, server := net.Pipe()
	r.pipe, r.inner = pipe, pipe
	var serverEnd net.Conn = addrConn{Conn: server, local: r.raw.LocalAddr(), remote: r.raw.RemoteAddr()}
	if implicitTLS {
		serverEnd = tls.Server(serverEnd, r.tlsSrv)
	}
	if !r.pipes.hand(serverEnd) {
		_ = server.Close()
		return
	}
	if implicitTLS && !r.upgradeInner() {
		return
	}
	r.startReader()

	if _, ok := r.relayReply(); !ok { // greeting
		return
	}
	for {
		line, err := r.readClientLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !r.gone.Load() {
				_ = r.writeClient(replyIdleTimeout)
			}
			return
		}
		cmd := strings.TrimRight(string(line), "\r\n")
		var ok bool
		switch verb := envelopeVerb(cmd); {
		case strings.HasPrefix(strings.ToUpper(cmd), "STARTTLS"): // go-smtp's rule
			ok = r.startTLS(line)
		case verb != "" && !validEnvelope(verb, cmd):
			ok = r.writeClient(replySyntaxError)
		case len(cmd) > 5 && strings.EqualFold(cmd[:5], "BDAT "):
			ok = r.bdat(line, cmd[5:])
		default:
			ok = r.command(line)
		}
		if !ok {
			return
		}
	}
}

// command forwards a command line and relays the reply, including AUTH
// continuations (334) and a DATA body (354).
func (r *relay) command(line []byte) bool {
	if !r.writeInner(line) {
		return false
	}
	for {
		code, ok := r.relayReply()
		switch {
		case !ok:
			return false
		case code == 334: // AUTH wants one more line from the client
			line, err := r.readClientLine()
			if err != nil || !r.writeInner(line) {
				return false
			}
		case code == 354:
			if !r.copyData() {
				return false
			}
		default:
			return true
		}
	}
}

// bdat forwards a BDAT command and, when go-smtp will read it, its chunk.
func (r *relay) bdat(line []byte, arg string) bool {
	if !r.writeInner(line) {
		return false
	}
	if n, ok := bdatSize(arg); ok {
		_ = r.raw.SetReadDeadline(time.Now().Add(ioTimeout))
		_ = r.inner.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := io.CopyN(r.inner, r.cr, n); err != nil {
			return false
		}
	}
	_, ok := r.relayReply()
	return ok
}

// copyData forwards a DATA body up to and including the terminating line.
func (r *relay) copyData() bool {
	var st dotState
	for {
		_ = r.raw.SetReadDeadline(time.Now().Add(ioTimeout))
		chunk, err := r.cr.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
		end := st.feed(chunk)
		if !r.writeInner(chunk) {
			return false
		}
		if end {
			return true
		}
	}
}

// startTLS forwards STARTTLS; when go-smtp accepts, both sides of the relay
// switch to TLS, the client side with the sink's certificate.
func (r *relay) startTLS(line []byte) bool {
	r.handoff.Store(true)
	if !r.writeInner(line) {
		return false
	}
	rep, ok := <-r.replies
	if !ok {
		return false
	}
	r.running = false // the reader stopped after this reply
	if !r.writeClient(rep.text) {
		return false
	}
	if rep.code != 220 {
		r.startReader()
		return true
	}
	// RFC 3207 §4.2: anything the client sent after STARTTLS in the clear
	// must be discarded, or an attacker could inject commands.
	_, _ = r.cr.Discard(r.cr.Buffered())
	tc := tls.Server(r.raw, r.tlsSrv)
	if !handshake(tc) {
		return false
	}
	r.client, r.cr = tc, bufio.NewReader(tc)
	if !r.upgradeInner() {
		return false
	}
	r.startReader()
	return true
}

// upgradeInner starts TLS towards go-smtp, whose end of the pipe is (or has
// just become) a tls.Server.
func (r *relay) upgradeInner() bool {
	tc := tls.Client(r.pipe, r.tlsInner)
	if !handshake(tc) {
		return false
	}
	r.inner = tc
	return true
}

func handshake(tc *tls.Conn) bool {
	_ = tc.SetDeadline(time.Now().Add(ioTimeout))
	err := tc.Handshake()
	_ = tc.SetDeadline(time.Time{})
	return err == nil
}

// startReader reads go-smtp's replies in the background, so go-smtp never
// blocks writing to the synchronous pipe while the relay is writing to it.
func (r *relay) startReader() {
	if r.replies == nil {
		r.replies = make(chan reply, 8)
	}
	r.innerTP = textproto.NewReader(bufio.NewReader(r.inner))
	r.running = true
	go func(tp *textproto.Reader, out chan<- reply) {
		for {
			rep, err := readReply(tp)
			if err != nil {
				// Wake the relay if it is waiting for the client, so go-smtp's
				// last words reach the client and the connection closes.
				r.gone.Store(true)
				_ = r.raw.SetReadDeadline(time.Now())
				close(out)
				return
			}
			// Decide before sending: once the relay has this reply it may
			// take over the pipe for a TLS handshake.
			stop := r.handoff.Swap(false)
			out <- rep
			if stop {
				return
			}
		}
	}(r.innerTP, r.replies)
}

// relayReply passes go-smtp's next reply to the client.
func (r *relay) relayReply() (int, bool) {
	rep, ok := <-r.replies
	if !ok {
		r.running = false
		return 0, false
	}
	return rep.code, r.writeClient(rep.text)
}

func (r *relay) readClientLine() ([]byte, error) {
	_ = r.raw.SetReadDeadline(time.Now().Add(ioTimeout))
	if r.gone.Load() {
		return nil, net.ErrClosed
	}
	return r.cr.ReadBytes('\n')
}

func (r *relay) writeClient(s string) bool {
	_ = r.raw.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := r.client.Write([]byte(s))
	return err == nil
}

func (r *relay) writeInner(b []byte) bool {
	_ = r.inner.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := r.inner.Write(b)
	return err == nil
}

// finish closes the pipe, passes on whatever go-smtp still said (such as
// "421 Too many errors") and closes the client connection.
func (r *relay) finish() {
	if r.pipe != nil {
		_ = r.pipe.Close()
	}
	if r.running {
		for rep := range r.replies {
			_ = r.writeClient(rep.text)
		}
	}
	_ = r.client.Close()
}
