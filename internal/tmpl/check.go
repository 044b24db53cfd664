package tmpl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

var errDefine = errors.New("define and block are not allowed")

// checkDefinitions refuses define and block. text/template quietly takes a define of the template's own name
// as the template when the rest of the text is empty, so the text is parsed again under a name no define in it
// can have, being longer than the text: any define or block then shows as a second tree. Only a text holding
// one of the two keywords can define a template.
func checkDefinitions(text string) error {
	if !strings.Contains(text, "define") && !strings.Contains(text, "block") {
		return nil
	}
	tr := parse.New(strings.Repeat("_", len(text)+1))
	tr.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tr.Parse(text, "", "", trees); err != nil {
		return err
	}
	if len(trees) != 1 {
		return errDefine
	}
	return nil
}

// check allows one template made of text, actions, if and with, whose string-building calls are bounded.
func check(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return errDefine
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return nil // text/template refuses to execute it
	}
	c := &checker{tree: t.Tree, dot: dataValue, vars: []variable{{"$", dataValue}}}
	return c.list(t.Tree.Root)
}

// size bounds the length of a value: at most copies times the length of the longest value in the data, plus
// bytes.
type size struct{ copies, bytes float64 }

var (
	dataValue  = size{copies: 1}
	smallValue = size{bytes: 64} // a number, boolean or nil as printed
)

func (a size) add(b size) size                   { return size{a.copies + b.copies, a.bytes + b.bytes} }
func (a size) scale(f float64) size              { return size{a.copies * f, a.bytes * f} }
func (a size) max(b size) size                   { return size{max(a.copies, b.copies), max(a.bytes, b.bytes)} }
func (a size) within(copies, bytes float64) bool { return a.copies <= copies && a.bytes <= bytes }

// checker walks a template in the order it executes, bounding the length of every value. A template has no
// loops, so a variable holds at any point a value assigned earlier in the text: the largest of those bounds it,
// whichever branches ran.
type checker struct {
	tree *parse.Tree
	vars []variable
	dot  size
}

type variable struct {
	name string
	size size
}

func (c *checker) refuse(n parse.Node, msg string) error {
	loc, _ := c.tree.ErrorContext(n) // name:line:column, the column counted from 0
	parts := strings.Split(loc, ":")
	if len(parts) >= 3 {
		line, err1 := strconv.Atoi(parts[len(parts)-2])
		col, err2 := strconv.Atoi(parts[len(parts)-1])
		if err1 == nil && err2 == nil {
			return fmt.Errorf("%s (line %d, column %d)", msg, line, col+1)
		}
	}
	return errors.New(msg)
}

func (c *checker) list(l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := c.node(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		_, err := c.pipe(n.Pipe)
		return err
	case *parse.IfNode:
		return c.branch(&n.BranchNode, false)
	case *parse.WithNode:
		return c.branch(&n.BranchNode, true)
	case *parse.ListNode:
		return c.list(n)
	case *parse.RangeNode:
		return c.refuse(n, "range is not allowed")
	case *parse.TemplateNode:
		return c.refuse(n, "template is not allowed")
	default:
		return c.refuse(n, fmt.Sprintf("%s is not allowed", n))
	}
}

// branch checks if and with. Variables declared in the pipeline or the branches end with them.
func (c *checker) branch(b *parse.BranchNode, with bool) error {
	mark, dot := len(c.vars), c.dot
	defer func() { c.vars, c.dot = c.vars[:mark], dot }()
	v, err := c.pipe(b.Pipe)
	if err != nil {
		return err
	}
	if with {
		c.dot = v
	}
	if err := c.list(b.List); err != nil {
		return err
	}
	c.dot = dot
	return c.list(b.ElseList)
}

func (c *checker) pipe(p *parse.PipeNode) (size, error) {
	if p == nil {
		return size{}, nil
	}
	var v size
	for i, cmd := range p.Cmds {
		var final *size
		if i > 0 {
			prev := v
			final = &prev
		}
		var err error
		if v, err = c.command(cmd, final); err != nil {
			return size{}, err
		}
	}
	for _, d := range p.Decl {
		if p.IsAssign {
			c.assign(d.Ident[0], v)
		} else {
			c.vars = append(c.vars, variable{d.Ident[0], v})
		}
	}
	return v, nil
}

func (c *checker) lookup(name string) size {
	for i := len(c.vars) - 1; i >= 0; i-- {
		if c.vars[i].name == name {
			return c.vars[i].size
		}
	}
	return dataValue
}

func (c *checker) assign(name string, v size) {
	for i := len(c.vars) - 1; i >= 0; i-- {
		if c.vars[i].name == name {
			c.vars[i].size = c.vars[i].size.max(v)
			return
		}
	}
}

// command bounds one command of a pipeline; final is the result of the command before, passed as the last
// argument.
func (c *checker) command(cmd *parse.CommandNode, final *size) (size, error) {
	args := make([]size, 0, len(cmd.Args))
	for _, a := range cmd.Args[1:] {
		s, err := c.arg(a)
		if err != nil {
			return size{}, err
		}
		args = append(args, s)
	}
	if final != nil {
		args = append(args, *final)
	}
	switch first := cmd.Args[0].(type) {
	case *parse.IdentifierNode:
		return c.call(first, cmd.Args[1:], args)
	case *parse.FieldNode, *parse.ChainNode: // a field, or a method of the data
		if _, err := c.arg(first); err != nil {
			return size{}, err
		}
		return dataValue, nil
	case *parse.VariableNode:
		if len(first.Ident) > 1 || len(args) > 0 {
			return dataValue, nil
		}
		return c.lookup(first.Ident[0]), nil
	default:
		return c.arg(first)
	}
}

func (c *checker) arg(n parse.Node) (size, error) {
	switch n := n.(type) {
	case *parse.StringNode:
		return size{bytes: float64(len(n.Text))}, nil
	case *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return smallValue, nil
	case *parse.DotNode:
		return c.dot, nil
	case *parse.VariableNode:
		if len(n.Ident) == 1 {
			return c.lookup(n.Ident[0]), nil
		}
		return dataValue, nil
	case *parse.ChainNode: // (pipeline).Field
		if _, err := c.arg(n.Node); err != nil {
			return size{}, err
		}
		return dataValue, nil
	case *parse.PipeNode:
		return c.pipe(n)
	case *parse.IdentifierNode: // a function called without arguments
		return c.call(n, nil, nil)
	}
	return dataValue, nil // a field
}

// growth is how many times longer than its arguments an escaper's output may be: js writes \u003C for <,
// html &#34; for ", urlquery %3C for <.
var growth = map[string]float64{"print": 1, "println": 1, "html": 5, "js": 6, "urlquery": 3}

// call bounds the result of a function; argNodes are the arguments written in the command, args the bounds of
// their values followed by the piped value if any.
func (c *checker) call(fn *parse.IdentifierNode, argNodes []parse.Node, args []size) (size, error) {
	var r size
	switch fn.Ident {
	case "print", "println", "html", "js", "urlquery":
		for _, a := range args {
			r = r.add(a)
		}
		r.bytes += float64(len(args)) // spaces and a newline
		r = r.scale(growth[fn.Ident])
	case "printf":
		var format *parse.StringNode
		if len(argNodes) > 0 {
			format, _ = argNodes[0].(*parse.StringNode)
		}
		if format == nil {
			return size{}, c.refuse(fn, "printf's format must be a quoted string")
		}
		var err error
		if r, err = printfBound(format.Text, args[1:]); err != nil {
			return size{}, c.refuse(fn, err.Error())
		}
	case "and", "or": // return one of their arguments
		for _, a := range args {
			r = r.max(a)
		}
		return r, nil
	case "slice":
		r = dataValue
		if len(args) > 0 {
			r = r.max(args[0])
		}
		return r, nil
	case "len", "not", "eq", "ne", "lt", "le", "gt", "ge":
		return smallValue, nil
	default: // index, call: an element of the data
		return dataValue.add(smallValue), nil
	}
	if !r.within(MaxCopies, MaxBuilt) {
		return size{}, c.refuse(fn, fmt.Sprintf("%s could build a string of more than %d copies of the values given to it or %s of other text: "+
			"strings must not be doubled over and over", fn.Ident, MaxCopies, formatSize(MaxBuilt)))
	}
	return r, nil
}
