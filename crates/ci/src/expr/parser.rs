//! Recursive descent with GitHub's precedence, lowest first: `||`, `&&`, `== !=`,
//! `< <= > >=`, `!`, then `.`, `[ ]` and `( )`.

use serde_json::Value as Json;

use super::ast::{Cmp, Func, Node};
use super::lexer::{Tok, Token};
use super::{number, ExprError};

/// GitHub's limit on nesting.
const MAX_DEPTH: usize = 50;

pub(crate) struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    pub(crate) fn new(toks: Vec<Token>) -> Self {
        Parser {
            toks,
            pos: 0,
            depth: 0,
        }
    }

    pub(crate) fn parse(mut self) -> Result<Node, ExprError> {
        if matches!(self.peek().tok, Tok::Eof) {
            return Err(ExprError::new(1, "An expression was expected"));
        }
        let node = self.or()?;
        let t = self.peek();
        if !matches!(t.tok, Tok::Eof) {
            return Err(unexpected(t));
        }
        Ok(node)
    }

    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek().tok, Tok::Op(o) if o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), ExprError> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(unexpected(self.peek()))
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(
                self.peek().col,
                format!("Exceeded max expression depth {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.equality()?;
        while self.eat("&&") {
            let right = self.equality()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Node, ExprError> {
        let mut left = self.relational()?;
        loop {
            let op = if self.eat("==") {
                Cmp::Eq
            } else if self.eat("!=") {
                Cmp::Ne
            } else {
                return Ok(left);
            };
            let right = self.relational()?;
            left = Node::Compare(op, Box::new(left), Box::new(right));
        }
    }

    fn relational(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("<=") {
                Cmp::Le
            } else if self.eat(">=") {
                Cmp::Ge
            } else if self.eat("<") {
                Cmp::Lt
            } else if self.eat(">") {
                Cmp::Gt
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Node::Compare(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.eat("!") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Node, ExprError> {
        let mut node = self.primary()?;
        loop {
            if self.eat(".") {
                let t = self.next();
                node = match t.tok {
                    Tok::Op("*") => Node::Wildcard(Box::new(node)),
                    Tok::Ident(name) => Node::Property(Box::new(node), name),
                    _ => return Err(unexpected(&t)),
                };
            } else if self.eat("[") {
                if self.eat("*") {
                    node = Node::Wildcard(Box::new(node));
                } else {
                    let index = self.or()?;
                    node = Node::Index(Box::new(node), Box::new(index));
                }
                self.expect("]")?;
            } else {
                return Ok(node);
            }
        }
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let t = self.next();
        match t.tok {
            Tok::Null => Ok(Node::Literal(Json::Null)),
            Tok::Bool(b) => Ok(Node::Literal(Json::Bool(b))),
            Tok::Number(n) => Ok(Node::Literal(number(n))),
            Tok::Str(s) => Ok(Node::Literal(Json::String(s))),
            Tok::Op("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Ident(name) => {
                if self.eat("(") {
                    let Some((func, canonical, min, max)) = Func::lookup(&name) else {
                        return Err(ExprError::new(
                            t.col,
                            format!("Unrecognized function: '{name}'"),
                        ));
                    };
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    if args.len() < min {
                        return Err(ExprError::new(
                            t.col,
                            format!("Too few parameters supplied: '{canonical}'"),
                        ));
                    }
                    if args.len() > max {
                        return Err(ExprError::new(
                            t.col,
                            format!("Too many parameters supplied: '{canonical}'"),
                        ));
                    }
                    Ok(Node::Call(func, args, t.col))
                } else {
                    Ok(Node::Named(name.to_ascii_lowercase(), t.col))
                }
            }
            _ => Err(unexpected(&t)),
        }
    }
}

fn unexpected(t: &Token) -> ExprError {
    match &t.tok {
        Tok::Eof => ExprError::new(t.col, "Unexpected end of expression"),
        Tok::Op(o) => ExprError::new(t.col, format!("Unexpected symbol: '{o}'")),
        Tok::Str(s) => ExprError::new(
            t.col,
            format!("Unexpected symbol: ''{}''", s.replace('\'', "''")),
        ),
        Tok::Ident(s) => ExprError::new(t.col, format!("Unexpected symbol: '{s}'")),
        Tok::Number(n) => ExprError::new(t.col, format!("Unexpected symbol: '{n}'")),
        Tok::Null => ExprError::new(t.col, "Unexpected symbol: 'null'"),
        Tok::Bool(b) => ExprError::new(t.col, format!("Unexpected symbol: '{b}'")),
    }
}
