package tmpl

import (
	"errors"
	"fmt"
	"text/template"
	"unicode/utf8"
)

// builtins replace text/template's string-building builtins under the same names and with the same results,
// except that they fail instead of building a string longer than opts.MaxOutput, refuse printf widths and
// precisions over MaxVerbWidth, and, when b is not nil, charge what they build to b. They add no function a
// template could not already call.
func builtins(o Options, b *budget) template.FuncMap {
	f := &funcs{o: o, budget: b}
	return template.FuncMap{
		"print":    f.join(fmt.Sprint),
		"println":  f.join(fmt.Sprintln),
		"printf":   f.printf,
		"html":     f.join(template.HTMLEscaper),
		"js":       f.join(template.JSEscaper),
		"urlquery": f.join(template.URLQueryEscaper),
	}
}

// budget is what the builtins may still build in one execution.
type budget struct{ left int }

type funcs struct {
	o      Options
	budget *budget
}

// join bounds a builtin that prints or escapes all its arguments. Their length is checked before: the escapers
// grow their input at most sixfold, and Sprint adds a space between arguments, so what is built stays within a
// small multiple of the cap; the result is checked after.
func (f *funcs) join(build func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		n := 0
		for _, a := range args {
			n += argSize(a)
		}
		if n > f.o.MaxOutput {
			return "", f.o.tooLong()
		}
		return f.done(build(args...))
	}
}

func (f *funcs) printf(format string, args ...any) (string, error) {
	if len(format) > f.o.MaxOutput {
		return "", f.o.tooLong()
	}
	sizes := make([]size, len(args))
	n := 0
	for i, a := range args {
		s := argSize(a)
		n += s
		sizes[i] = size{bytes: float64(s)}
	}
	if n > f.o.MaxOutput {
		return "", f.o.tooLong()
	}
	bound, err := printfBound(format, sizes)
	if err != nil {
		return "", err
	}
	if bound.bytes > float64(f.o.transientLimit()) {
		return "", f.o.tooLong()
	}
	return f.done(fmt.Sprintf(format, args...))
}

func (f *funcs) done(s string) (string, error) {
	if len(s) > f.o.MaxOutput {
		return "", f.o.tooLong()
	}
	if f.budget != nil {
		if f.budget.left -= len(s); f.budget.left < 0 {
			return "", &LimitError{What: "text built by the functions of the " + f.o.templateNoun(), Limit: BuiltFactor * f.o.MaxOutput}
		}
	}
	return s, nil
}

// argSize is the length of an argument as printed. Only strings can be long: the other values a template sees
// are the caller's data, numbers and booleans.
func argSize(a any) int {
	if s, ok := a.(string); ok {
		return len(s)
	}
	return len(fmt.Sprint(a))
}

// verbExtra bounds what one printf directive prints besides its argument's copies: padding to a width of at most
// MaxVerbWidth, a number printed with %f and precision 64 (%.64f of a complex 1e308 is 753 bytes), type names
// in %!v(type=…) and %T.
const verbExtra = 1024

// printfBound bounds the length of fmt.Sprintf(format, args...) given bounds on the printed length of each
// argument, and refuses widths and precisions over MaxVerbWidth or taken from an argument (*). It follows fmt's
// reading of the format, so that an argument printed twice with an explicit index (%[1]s%[1]s) counts twice.
func printfBound(format string, args []size) (size, error) {
	total := size{bytes: float64(len(format)) + 16}
	extraFrom, err := scanFormat(format, len(args), func(arg int, expand float64) {
		total.bytes += verbExtra
		if arg >= 0 {
			total = total.add(args[arg].scale(expand))
		}
	})
	if err != nil {
		return size{}, fmt.Errorf("printf format %s: %w", quoteShort(format), err)
	}
	for _, a := range args[extraFrom:] { // %!(EXTRA type=value, …)
		total = total.add(a)
		total.bytes += 64
	}
	return total, nil
}

func quoteShort(s string) string {
	if len(s) > 48 {
		cut := 48
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

var (
	errStar  = errors.New("* widths are not allowed")
	errWidth = fmt.Errorf("widths and precisions over %d are not allowed", MaxVerbWidth)
)

// scanFormat reads format as fmt.Sprintf does with numArgs arguments, calling visit for each directive with the
// index of the argument it prints (-1 for none: %%, a missing or bad index) and how many times longer than the
// argument it may print it. It returns the index from which arguments are left over and printed as EXTRA.
func scanFormat(format string, numArgs int, visit func(arg int, expand float64)) (extraFrom int, err error) {
	end := len(format)
	argNum := 0
	reordered := false
	// argNumber mirrors fmt's: an explicit [n] index sets the argument.
	argNumber := func(i int, good *bool) (newi int, found bool) {
		if i >= end || format[i] != '[' {
			return i, false
		}
		reordered = true
		index, wid, ok := parseArgNumber(format[i:])
		if ok && 0 <= index && index < numArgs {
			argNum = index
			return i + wid, true
		}
		*good = false
		return i + wid, ok
	}
	for i := 0; i < end; {
		for i < end && format[i] != '%' {
			i++
		}
		if i >= end {
			break
		}
		i++
		good := true
		var sharp, plus bool
	flags:
		for ; i < end; i++ {
			switch format[i] {
			case '#':
				sharp = true
			case '+':
				plus = true
			case '0', '-', ' ':
			default:
				break flags
			}
		}
		var afterIndex bool
		i, afterIndex = argNumber(i, &good)
		if i < end && format[i] == '*' {
			return 0, errStar
		}
		isNum, newi, err := parseNum(format, i)
		if err != nil {
			return 0, err
		}
		i = newi
		if afterIndex && isNum { // %[3]2d
			good = false
		}
		if i+1 < end && format[i] == '.' {
			i++
			if afterIndex {
				good = false
			}
			i, afterIndex = argNumber(i, &good)
			if i < end && format[i] == '*' {
				return 0, errStar
			}
			if _, i, err = parseNum(format, i); err != nil {
				return 0, err
			}
		}
		if !afterIndex {
			i, _ = argNumber(i, &good)
		}
		if i >= end {
			visit(-1, 0) // %!(NOVERB)
			break
		}
		verb, w := utf8.DecodeRuneInString(format[i:])
		i += w
		switch {
		case verb == '%', !good, argNum >= numArgs:
			visit(-1, 0)
		default:
			visit(argNum, expansion(verb, sharp, plus))
			argNum++
		}
	}
	if reordered || argNum >= numArgs {
		return numArgs, nil
	}
	return argNum, nil
}

// expansion bounds how many times longer than its argument printed plainly a verb may print it.
func expansion(verb rune, sharp, plus bool) float64 {
	switch verb {
	case 'q': // "\xff" for one byte
		return 4
	case 'x', 'X': // "0xff " for one byte with % #x
		return 5
	case 'v', 'w':
		if sharp || plus { // Go syntax quotes strings and names fields
			return 5
		}
	}
	return 1
}

// parseNum reads a width or precision at format[i:], refusing one over MaxVerbWidth.
func parseNum(format string, i int) (isNum bool, newi int, err error) {
	for n := 0; i < len(format) && '0' <= format[i] && format[i] <= '9'; i++ {
		if n = n*10 + int(format[i]-'0'); n > MaxVerbWidth {
			return false, 0, errWidth
		}
		isNum = true
	}
	return isNum, i, nil
}

// parseArgNumber is fmt's: it reads "[n]" and returns n-1, the length read, and whether it is well formed.
func parseArgNumber(format string) (index int, wid int, ok bool) {
	if len(format) < 3 {
		return 0, 1, false
	}
	for i := 1; i < len(format); i++ {
		if format[i] == ']' {
			n, isNum, newi := 0, false, 1
			for ; newi < i && '0' <= format[newi] && format[newi] <= '9'; newi++ {
				if n > 1e6 {
					return 0, i + 1, false
				}
				n = n*10 + int(format[newi]-'0')
				isNum = true
			}
			if !isNum || newi != i {
				return 0, i + 1, false
			}
			return n - 1, i + 1, true
		}
	}
	return 0, 1, false
}
