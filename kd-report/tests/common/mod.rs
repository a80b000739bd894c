//! A small reader of the SVG kd-report writes: its tags with their attributes and text, checked
//! to be balanced, so that tests can assert on what a figure draws without looking at it.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// One element: its name, attributes (entities decoded) and, for `text` and `title`, its text.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
}

impl Tag {
    pub fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .unwrap_or_else(|| panic!("<{}> has no {name}: {:?}", self.name, self.attrs))
    }

    pub fn num(&self, name: &str) -> f64 {
        let value = self.attr(name);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
    }

    pub fn class(&self) -> &str {
        self.attrs.get("class").map_or("", String::as_str)
    }

    pub fn key(&self) -> &str {
        self.attrs.get("data-key").map_or("", String::as_str)
    }
}

/// The elements of `svg` in document order, or why it is not well formed: unbalanced or
/// misnested tags, a stray `<` or `&`, an attribute without a quoted value.
pub fn parse(svg: &str) -> Result<Vec<Tag>, String> {
    let body = svg
        .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        .ok_or("no XML declaration")?;
    let mut tags: Vec<Tag> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        check_text(text)?;
        if let Some(&(_, index)) = open.last() {
            tags[index].text.push_str(&decode(text)?);
        } else if !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        let end = rest[start..].find('>').ok_or("unclosed tag")? + start;
        let inside = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = inside.strip_prefix('/') {
            let (expected, _) = open.pop().ok_or(format!("</{name}> closes nothing"))?;
            if expected != name {
                return Err(format!("</{name}> closes <{expected}>"));
            }
            continue;
        }
        let self_closing = inside.ends_with('/');
        let inside = inside.trim_end_matches('/');
        let (name, attrs) = inside.split_once(' ').unwrap_or((inside, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("bad tag name {name:?}"));
        }
        if open.is_empty() {
            roots += 1;
        }
        tags.push(Tag {
            name: name.to_owned(),
            attrs: parse_attrs(attrs)?,
            text: String::new(),
        });
        if !self_closing {
            open.push((name.to_owned(), tags.len() - 1));
        }
    }
    check_text(rest)?;
    if !rest.trim().is_empty() {
        return Err(format!("text after the root: {rest:?}"));
    }
    if let Some((name, _)) = open.pop() {
        return Err(format!("<{name}> is never closed"));
    }
    if roots != 1 || tags.first().map(|t| t.name.as_str()) != Some("svg") {
        return Err("the document is not one <svg>".into());
    }
    Ok(tags)
}

fn parse_attrs(mut text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut attrs = BTreeMap::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return Ok(attrs);
        }
        let (name, after) = text
            .split_once("=\"")
            .ok_or(format!("bad attribute in {text:?}"))?;
        let (value, after) = after.split_once('"').ok_or("unterminated attribute")?;
        check_text(value)?;
        if attrs.insert(name.to_owned(), decode(value)?).is_some() {
            return Err(format!("attribute {name} twice"));
        }
        text = after;
    }
}

/// Character data must not hold a raw `<`, and every `&` must start an entity.
fn check_text(text: &str) -> Result<(), String> {
    if text.contains('<') {
        return Err(format!("raw < in {text:?}"));
    }
    decode(text).map(|_| ())
}

fn decode(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').ok_or(format!("bare & in {text:?}"))? + i;
        out.push_str(match &rest[i + 1..end] {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "apos" => "'",
            other => return Err(format!("unknown entity &{other};")),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The elements of class `class`.
pub fn of_class<'a>(tags: &'a [Tag], class: &str) -> Vec<&'a Tag> {
    tags.iter().filter(|t| t.class() == class).collect()
}

/// The one element of class `class`.
pub fn one_of_class<'a>(tags: &'a [Tag], class: &str) -> &'a Tag {
    let found = of_class(tags, class);
    assert_eq!(found.len(), 1, "expected one {class}, got {}", found.len());
    found[0]
}

/// The plot area as `(left, top, right, bottom)`.
pub fn plot_area(tags: &[Tag]) -> (f64, f64, f64, f64) {
    let rect = one_of_class(tags, "plot-area");
    let (x, y) = (rect.num("x"), rect.num("y"));
    (x, y, x + rect.num("width"), y + rect.num("height"))
}

/// The image's width and height from the root.
pub fn size(tags: &[Tag]) -> (f64, f64) {
    (tags[0].num("width"), tags[0].num("height"))
}

/// Every coordinate an element is placed at, as `(x, y)` pairs.
pub fn anchor_points(tag: &Tag) -> Vec<(f64, f64)> {
    match tag.name.as_str() {
        "line" => vec![
            (tag.num("x1"), tag.num("y1")),
            (tag.num("x2"), tag.num("y2")),
        ],
        "circle" => vec![(tag.num("cx"), tag.num("cy"))],
        "text" => vec![(tag.num("x"), tag.num("y"))],
        "rect" if tag.attrs.contains_key("class") => {
            let (x, y) = (tag.num("x"), tag.num("y"));
            vec![(x, y), (x + tag.num("width"), y + tag.num("height"))]
        }
        "polyline" => tag
            .attr("points")
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect(),
        _ => vec![],
    }
}

/// Whether `1-2-5`: `step = m·10^e` with `m` ∈ {1, 2, 5}, and every tick a multiple of it.
pub fn is_one_two_five(step: f64, ticks: &[f64]) -> bool {
    let exponent = step.log10().floor();
    let mantissa = step / 10f64.powf(exponent);
    let nice = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-9);
    nice && ticks.iter().all(|t| {
        let k = t / step;
        (k - k.round()).abs() < 1e-6
    })
}

/// Asserts `a` and `b` agree to the SVG's two decimals.
pub fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 0.0051, "{what}: {a} vs {b}");
}
