package bulk

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// importColumns are the import template's columns in the template's order. A file may put
// them in any order and any letter case, but must have each exactly once, so that a column
// misspelt in a spreadsheet is an error rather than data silently dropped.
var importColumns = []string{"name", "email", "phone", "department", "position", "workNumber", "location", "role"}

// exampleRow is the template's example. It is a row that imports as it is, so an admin who
// only overwrites it cannot get the format wrong.
var exampleRow = []string{"Bob Builder", "bob@acme.example", "", "Engineering", "Site Reliability Engineer",
	"+49 30 1234-100", "Berlin", "Member"}

// Template is the CSV file admins download, fill in and import: the header and one example
// row.
func Template() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(importColumns)
	_ = w.Write(exampleRow)
	w.Flush()
	return b.Bytes()
}

// These mirror the Invitation schema, so that a row the API server would refuse is caught
// before anything is created and reported with its line.
var (
	e164       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	workNumber = regexp.MustCompile(`^\+?[0-9][0-9 ()-]*$`)
	maxLengths = map[string]int{"name": 128, "email": 254, "department": 128, "position": 128, "workNumber": 32, "location": 128}
	roles      = []rosterv1.Role{rosterv1.RoleMember, rosterv1.RoleAdmin, rosterv1.RoleAccountAdmin, rosterv1.RoleSuperAdmin}
)

// RowError is one problem with an import file, at the line a spreadsheet or editor shows.
type RowError struct {
	// Line is the file's line the row starts on, counting the header as line 1.
	Line int
	// Column is the column at fault; empty when the whole row or the file is.
	Column string
	// Message says what is wrong and what is expected instead.
	Message string
}

// String puts the line first, the way people look the row up in their spreadsheet.
func (e RowError) String() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Column, e.Message)
}

// ValidationError is an import file with problems. Import returns it before creating
// anything, so an admin fixes the file and imports it again without having to find out
// which rows already went in.
type ValidationError struct {
	// Problems are all the problems found, in line order.
	Problems []RowError
}

// Error lists every problem, one a line, so the whole file can be fixed in one round.
func (e *ValidationError) Error() string {
	lines := map[int]bool{}
	for _, p := range e.Problems {
		lines[p.Line] = true
	}
	var b strings.Builder
	if len(lines) == 1 {
		b.WriteString("the import file has a problem")
	} else {
		fmt.Fprintf(&b, "the import file has problems on %d lines", len(lines))
	}
	b.WriteString("; nothing was imported:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// importRow is one valid row of an import file.
type importRow struct {
	line                                   int
	name, email, phone                     string
	department, position, number, location string
	role                                   rosterv1.Role
}

// invitee is how results name the person: the address the invitation goes to.
func (r importRow) invitee() string {
	if r.email != "" {
		return r.email
	}
	return r.phone
}

// parse reads an import file. It returns the valid rows and the problems of the others; its
// error is for a file that cannot be read as an import at all (no or a wrong header, broken
// CSV), which no row can be trusted after.
func parse(r io.Reader) ([]importRow, []RowError, error) {
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, &ValidationError{Problems: []RowError{{Line: 1,
			Message: "the file is empty; it needs the header " + strings.Join(importColumns, ",")}}}
	}
	if err != nil {
		return nil, nil, csvError(err, nil)
	}
	index, problems := readHeader(header)
	if len(problems) > 0 {
		return nil, nil, &ValidationError{Problems: problems}
	}

	var rows []importRow
	var bad []RowError
	seenEmail, seenPhone := map[string]int{}, map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, csvError(err, bad)
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			// Spreadsheets often save trailing rows of empty cells.
			continue
		}
		if len(rec) != len(importColumns) {
			bad = append(bad, RowError{Line: line,
				Message: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(importColumns))})
			continue
		}
		get := func(col string) string { return strings.TrimSpace(rec[index[col]]) }
		row, rowProblems := validateRow(line, get)
		if row.email != "" {
			rowProblems = seenOnce(seenEmail, strings.ToLower(row.email), row.email, "email", line, rowProblems)
		}
		if row.phone != "" {
			rowProblems = seenOnce(seenPhone, row.phone, row.phone, "phone", line, rowProblems)
		}
		if len(rowProblems) > 0 {
			bad = append(bad, rowProblems...)
			continue
		}
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// readHeader maps each column to its field index and reports every unknown, repeated or
// missing column at once.
func readHeader(header []string) (map[string]int, []RowError) {
	canonical := map[string]string{}
	for _, c := range importColumns {
		canonical[strings.ToLower(c)] = c
	}
	index := map[string]int{}
	var problems []RowError
	for i, h := range header {
		h = strings.TrimSpace(h)
		col, ok := canonical[strings.ToLower(h)]
		switch {
		case !ok:
			problems = append(problems, RowError{Line: 1,
				Message: fmt.Sprintf("unknown column %q; the columns are %s", h, strings.Join(importColumns, ","))})
		case hasKey(index, col):
			problems = append(problems, RowError{Line: 1, Message: fmt.Sprintf("column %q appears twice", col)})
		default:
			index[col] = i
		}
	}
	for _, c := range importColumns {
		if !hasKey(index, c) {
			problems = append(problems, RowError{Line: 1, Message: fmt.Sprintf("missing column %q", c)})
		}
	}
	return index, problems
}

// validateRow checks one row against what an Invitation accepts and reports every problem,
// not just the first, so that one round of fixing is enough.
func validateRow(line int, get func(string) string) (importRow, []RowError) {
	row := importRow{line: line, name: get("name"), email: get("email"), phone: get("phone"),
		department: get("department"), position: get("position"), number: get("workNumber"),
		location: get("location")}
	var problems []RowError
	bad := func(col, format string, args ...any) {
		problems = append(problems, RowError{Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	for _, col := range importColumns {
		if max, ok := maxLengths[col]; ok && utf8.RuneCountInString(get(col)) > max {
			bad(col, "is %d characters long, at most %d are allowed", utf8.RuneCountInString(get(col)), max)
		}
	}
	switch {
	case row.email == "" && row.phone == "":
		bad("", "needs an email or a phone to send the invitation to")
	case row.email != "" && !validEmail(row.email):
		bad("email", "%q is not an email address like name@example.com", row.email)
	}
	if row.phone != "" && !e164.MatchString(row.phone) {
		bad("phone", "%q is not a phone number in international form like +4915112345678", row.phone)
	}
	if row.number != "" && !workNumber.MatchString(row.number) {
		bad("workNumber", "%q may only have digits, spaces, ( ) and -, and start with + or a digit", row.number)
	}
	if r := get("role"); r != "" {
		for _, known := range roles {
			// Spreadsheet users type "admin" as readily as "Admin"; both mean the one role.
			if strings.EqualFold(r, string(known)) {
				row.role = known
			}
		}
		if row.role == "" {
			bad("role", "%q is not one of Member, Admin, AccountAdmin, SuperAdmin (empty means Member)", r)
		}
	}
	return row, problems
}

// validEmail accepts a bare address with a dotted domain. It is stricter than the schema's
// email format, which would take "Bob <bob@acme.example>" or bob@localhost: an invitation
// to either would never arrive.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	domain := s[strings.LastIndexByte(s, '@')+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// csvError turns a CSV syntax error into a problem at its line, after the ones found before.
func csvError(err error, before []RowError) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("reading the import file: %w", err)
	}
	return &ValidationError{Problems: append(before, RowError{Line: pe.StartLine,
		Message: fmt.Sprintf("broken CSV (%v); nothing after it could be read", pe.Err)})}
}

// skipBOM drops the byte order mark Excel puts in front of UTF-8 CSV files, which would
// otherwise make the first column's name unknown.
func skipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	return br
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// seenOnce records the line a person's key (an email in lower case, a phone) first stands
// on in seen, and adds a problem when it stood on an earlier line of the file already.
func seenOnce(seen map[string]int, key, value, column string, line int, problems []RowError) []RowError {
	if first, ok := seen[key]; ok {
		return append(problems, RowError{Line: line, Column: column, Message: fmt.Sprintf("%s is already on line %d", value, first)})
	}
	seen[key] = line
	return problems
}
