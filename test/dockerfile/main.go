// dockerfile-check parses a Dockerfile with BuildKit's own parser, runs BuildKit's linter
// (the rules `docker build --check` reports) over it, and prints what the tests need as JSON:
// every lint warning, and per stage its name, base, final USER and CMD.
//
//	go run . ../../Dockerfile
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type warning struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

type stage struct {
	Name    string   `json:"name"`
	Base    string   `json:"base"`
	User    string   `json:"user"`
	Cmd     []string `json:"cmd"`
	CmdJSON bool     `json:"cmdJson"`
	Expose  []string `json:"expose"`
}

type result struct {
	Warnings []warning          `json:"warnings"`
	MetaArgs map[string]*string `json:"metaArgs"`
	Stages   []stage            `json:"stages"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-check DOCKERFILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	out := result{Warnings: []warning{}, MetaArgs: map[string]*string{}, Stages: []stage{}}
	ast, err := parser.Parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parse:", err)
		os.Exit(1)
	}
	for _, w := range ast.Warnings {
		out.Warnings = append(out.Warnings, warning{Rule: "parser", Message: w.Short, Line: w.Location.Start.Line})
	}
	lint := linter.New(&linter.Config{Warn: func(rule, description, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		out.Warnings = append(out.Warnings, warning{Rule: rule, Message: msg, Line: line})
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		fmt.Fprintln(os.Stderr, "instructions:", err)
		os.Exit(1)
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			out.MetaArgs[kv.Key] = kv.Value
		}
	}
	for _, s := range stages {
		st := stage{Name: s.Name, Base: s.BaseName, Cmd: []string{}, Expose: []string{}}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				st.User = c.User
			case *instructions.CmdCommand:
				st.Cmd = c.CmdLine
				st.CmdJSON = !c.PrependShell
			case *instructions.ExposeCommand:
				st.Expose = append(st.Expose, c.Ports...)
			}
		}
		out.Stages = append(out.Stages, st)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
