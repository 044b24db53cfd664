package analysis

import (
	"errors"
	"fmt"
	"text/template"
)

// maxVerbWidth bounds a printf width or precision: fmt allows a million, which a loop of variables multiplies.
const maxVerbWidth = 64

// boundedBuiltins replace text/template's string-building builtins under the same names and with the same
// results, except that they fail instead of building a string longer than a rendered query may be. They add no
// function a template could not already call.
var boundedBuiltins = template.FuncMap{
	"print":    boundedBy(fmt.Sprint),
	"println":  boundedBy(fmt.Sprintln),
	"printf":   boundedPrintf,
	"html":     boundedBy(template.HTMLEscaper),
	"js":       boundedBy(template.JSEscaper),
	"urlquery": boundedBy(template.URLQueryEscaper),
}

func boundedBy(f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		return bounded(args, func() string { return f(args...) })
	}
}

// bounded runs build when its arguments are small enough for the result to be bounded, and checks the result.
// Escapers grow their input at most sixfold, so the check before bounds the memory and the check after the output.
func bounded(args []any, build func() string) (string, error) {
	if argsSize(args) > maxRendered {
		return "", errTooLong
	}
	s := build()
	if len(s) > maxRendered {
		return "", errTooLong
	}
	return s, nil
}

func boundedPrintf(format string, args ...any) (string, error) {
	if err := checkFormat(format); err != nil {
		return "", err
	}
	if len(format) > maxRendered {
		return "", errTooLong
	}
	return bounded(args, func() string { return fmt.Sprintf(format, args...) })
}

// argsSize is the length of the arguments as strings; only strings can be long here (the values a template sees
// are QueryVars, its fields, numbers, booleans and strings it built).
func argsSize(args []any) int {
	n := 0
	for _, a := range args {
		if s, ok := a.(string); ok {
			n += len(s)
		} else {
			n += len(fmt.Sprint(a))
		}
	}
	return n
}

// checkFormat refuses printf verbs whose width or precision is over maxVerbWidth or comes from an argument (*).
func checkFormat(format string) error {
	for i := 0; i < len(format); i++ {
		if format[i] == '%' {
			end, err := checkDirective(format, i+1)
			if err != nil {
				return fmt.Errorf("printf format %q: %w", format, err)
			}
			i = end
		}
	}
	return nil
}

// checkDirective checks the directive after a % at format[i:] and returns the index of its verb.
func checkDirective(format string, i int) (int, error) {
	for ; i < len(format); i++ {
		switch c := format[i]; {
		case c == '*':
			return 0, errors.New("* widths are not allowed")
		case c >= '0' && c <= '9':
			n := 0
			for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
				if n = n*10 + int(format[i]-'0'); n > maxVerbWidth {
					return 0, fmt.Errorf("widths and precisions over %d are not allowed", maxVerbWidth)
				}
			}
			i-- // the loop's i++ moves to the character after the number
		case c == '[':
			for i < len(format) && format[i] != ']' {
				i++
			}
		case c == '+' || c == '-' || c == '#' || c == ' ' || c == '.':
		default:
			return i, nil // the verb, or the second % of %%
		}
	}
	return i, nil
}
