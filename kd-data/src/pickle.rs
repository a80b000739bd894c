//! A minimal, safe reader of Python pickles: enough for CIFAR's python files, whichever protocol
//! (0 to 5) wrote them, and for the `data.pkl` of a PyTorch checkpoint (`torch.save`).
//!
//! It runs the pickle opcodes on a small stack machine that builds a *description* of the
//! pickled objects ([`Value`]) and never imports or calls anything: a global is only a pair of
//! names, a call (`REDUCE`) only records its callable and arguments, and a persistent id
//! (`PERSID`/`BINPERSID`, PyTorch's reference to a tensor storage kept outside the pickle) is
//! only recorded as [`Value::PersId`]. A few patterns are then recognised for the data they
//! stand for: numpy arrays (`_reconstruct` + `BUILD`, or protocol 5's `_frombuffer`), numpy
//! dtypes and scalars, Python 3's protocol-2 spelling of `bytes` (`_codecs.encode(str,
//! 'latin1')`), and `collections.OrderedDict()`, read as an empty dict so that the `SETITEMS`
//! that follow fill it (every PyTorch `state_dict` is one).
//!
//! Every length read from the input is checked against what is left of it, nesting is bounded,
//! and shared references may not expand the result beyond a budget proportional to the input,
//! so malformed or hostile input gives an error, never a panic or a runaway allocation.
//!
//! The entry point is [`load`]; [`Value`]'s accessors (`as_text`, `as_int`, `as_items`,
//! `as_dict`, `as_global`...) take the description apart.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// How deeply values may nest. CIFAR's files nest 7 levels (dict, array state, dtype state...);
/// the bound keeps recursion in resolution and in `Drop` far from the stack's limit.
const MAX_DEPTH: usize = 64;

/// How many values shared references (memo `GET`s, `DUP`) may add by copying, beyond one per
/// input byte: enough for any data file, too little for a "billion laughs" pickle.
const SHARED_SLACK: usize = 1 << 16;

/// The newest pickle protocol (Python 3.8+).
const HIGHEST_PROTOCOL: u8 = 5;

/// A pickled value, as a description: nothing in it was executed.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits (larger ones are an error).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// Python 3 `bytes`/`bytearray`, and Python 2 `str` (what `encoding='bytes'` gives).
    Bytes(Cow<'a, [u8]>),
    /// A Python 3 `str` (Python 2 `unicode`).
    Str(Cow<'a, str>),
    /// A `list`.
    List(Vec<Value<'a>>),
    /// A `tuple`.
    Tuple(Vec<Value<'a>>),
    /// A `set` or `frozenset`, in pickled order.
    Set(Vec<Value<'a>>),
    /// A `dict`, in pickled order.
    Dict(Vec<(Value<'a>, Value<'a>)>),
    /// A reference to `module.name`, not imported.
    Global { module: String, name: String },
    /// A call of `callable` with `args` (`REDUCE`, and `NEWOBJ` with the class as callable),
    /// not performed.
    Reduce {
        callable: Box<Value<'a>>,
        args: Box<Value<'a>>,
    },
    /// `object.__setstate__(state)` (`BUILD`), not performed.
    Build {
        object: Box<Value<'a>>,
        state: Box<Value<'a>>,
    },
    /// A persistent id (`PERSID`, `BINPERSID`): a reference the pickler left for its loader to
    /// resolve outside the pickle, not resolved. PyTorch's is `('storage', storage type, key,
    /// location, numel)`, naming the file `data/<key>` of the checkpoint's archive.
    PersId(Box<Value<'a>>),
    /// A numpy `dtype`.
    Dtype(Dtype),
    /// A numpy array.
    NdArray(NdArray<'a>),
    /// While the machine runs: a shared value, stored apart. Never in a loaded result.
    Ref(usize),
}

impl<'a> Value<'a> {
    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
            Value::Global { .. } => "global",
            Value::Reduce { .. } => "call",
            Value::Build { .. } => "object",
            Value::PersId(_) => "persistent id",
            Value::Dtype(_) => "numpy dtype",
            Value::NdArray(_) => "numpy array",
            Value::Ref(_) => "reference",
        }
    }

    /// The text of a `str`, or of `bytes` that are UTF-8 (Python 2 strings read as bytes).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An `int` or `bool` as an integer.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_items(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Removes and returns the entry of a dict whose key is `key` as `str` or as `bytes`.
    pub fn take_entry(&mut self, key: &str) -> Option<Value<'a>> {
        let Value::Dict(pairs) = self else {
            return None;
        };
        let i = pairs.iter().position(|(k, _)| k.as_text() == Some(key))?;
        Some(pairs.remove(i).1)
    }

    /// The keys of a dict that are text, for error messages.
    pub fn text_keys(&self) -> Vec<String> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .filter_map(|(k, _)| k.as_text().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The `(module, name)` of a global.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// The pairs of a dict, in pickled order. A dict subclass whose instance attributes were
    /// set by `BUILD` counts as its pairs (the attributes are left out): PyTorch's
    /// `state_dict()` is an `OrderedDict` carrying a `_metadata` attribute.
    pub fn as_dict(&self) -> Option<&[(Value<'a>, Value<'a>)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            Value::Build { object, .. } => match &**object {
                Value::Dict(pairs) => Some(pairs),
                _ => None,
            },
            _ => None,
        }
    }

    fn global(&self) -> Option<(&str, &str)> {
        self.as_global()
    }

    fn into_items(self) -> Option<Vec<Value<'a>>> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }
}

/// A numpy dtype as pickled: its type code (`u1`, `<i8`'s `i8`...) and byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtype {
    /// Kind letter and item size, as numpy pickles them: `u1`, `i8`, `f4`, `b1`...
    pub code: String,
    /// `|` (not applicable), `<` (little), `>` (big) or `=` (native).
    pub byte_order: char,
}

impl Dtype {
    /// The kind letter: `u`, `i`, `f`, `b`...
    pub fn kind(&self) -> char {
        self.code.chars().next().unwrap_or('?')
    }

    /// Bytes per item, from the code's digits.
    pub fn item_size(&self) -> Option<usize> {
        self.code.get(1..)?.parse().ok()
    }

    /// Whether items are unsigned bytes.
    pub fn is_u8(&self) -> bool {
        self.code == "u1"
    }

    fn big_endian(&self) -> bool {
        self.byte_order == '>' || (self.byte_order == '=' && cfg!(target_endian = "big"))
    }

    /// Decodes one item of an integer or boolean dtype.
    fn int_at(&self, bytes: &[u8]) -> Option<i64> {
        let mut buf = [0u8; 8];
        let n = bytes.len();
        if n == 0 || n > 8 {
            return None;
        }
        let signed = self.kind() == 'i';
        let top_byte = if self.big_endian() {
            bytes[0]
        } else {
            bytes[n - 1]
        };
        let negative = signed && top_byte & 0x80 != 0;
        if negative {
            buf = [0xff; 8];
        }
        if self.big_endian() {
            buf[8 - n..].copy_from_slice(bytes);
            buf.reverse();
        } else {
            buf[..n].copy_from_slice(bytes);
        }
        let value = i64::from_le_bytes(buf);
        // An unsigned 64-bit value past i64::MAX has no i64 form.
        (signed || n < 8 || value >= 0).then_some(value)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.byte_order, self.code)
    }
}

/// A numpy array: shape, dtype and raw item bytes, in Fortran or C order as pickled.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray<'a> {
    /// The length of each axis.
    pub shape: Vec<usize>,
    /// The item type.
    pub dtype: Dtype,
    /// Whether `data` is in Fortran order (first axis fastest) rather than C order.
    pub fortran_order: bool,
    /// The raw item bytes, in the dtype's byte order.
    pub data: Cow<'a, [u8]>,
    item_size: usize,
}

impl<'a> NdArray<'a> {
    /// Checks that `data` holds exactly the items the shape calls for.
    fn new(
        shape: Vec<usize>,
        dtype: Dtype,
        fortran_order: bool,
        data: Cow<'a, [u8]>,
    ) -> Result<Self, String> {
        let item_size = dtype
            .item_size()
            .filter(|&s| s > 0)
            .ok_or_else(|| format!("numpy dtype {dtype} has no known item size"))?;
        let needed = shape
            .iter()
            .try_fold(item_size, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("numpy array shape {} is too large", shape_str(&shape)))?;
        if needed != data.len() {
            return Err(format!(
                "numpy array of shape {} and dtype {dtype} needs {needed} bytes of data, found {}",
                shape_str(&shape),
                data.len()
            ));
        }
        Ok(NdArray {
            shape,
            dtype,
            fortran_order,
            data,
            item_size,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.data.len() / self.item_size
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The item bytes in C order (last axis fastest), converting a Fortran-ordered array.
    pub fn into_c_order(self) -> Cow<'a, [u8]> {
        if !self.fortran_order || self.shape.len() < 2 || self.data.is_empty() {
            return self.data;
        }
        // Fortran strides, in items: the first axis varies fastest.
        let mut strides = Vec::with_capacity(self.shape.len());
        let mut stride = 1;
        for &d in &self.shape {
            strides.push(stride);
            stride *= d;
        }
        let mut index = vec![0usize; self.shape.len()];
        let mut out = Vec::with_capacity(self.data.len());
        for _ in 0..self.len() {
            let at = index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
                * self.item_size;
            out.extend_from_slice(&self.data[at..at + self.item_size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < self.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Cow::Owned(out)
    }

    /// The items of an integer or boolean array, in memory order; `None` for other dtypes.
    pub fn to_ints(&self) -> Option<Vec<i64>> {
        if !matches!(self.dtype.kind(), 'i' | 'u' | 'b') {
            return None;
        }
        self.data
            .chunks_exact(self.item_size)
            .map(|item| self.dtype.int_at(item))
            .collect()
    }
}

/// `(10000, 3072)`, `(5,)`: a shape as Python prints it.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Why a pickle could not be read: where (byte offset and opcode) when the machine was running.
#[derive(Clone, Debug, PartialEq)]
pub struct PickleError {
    /// The byte offset of the failing opcode, and the opcode.
    pub at: Option<(usize, u8)>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((offset, op)) => match opcode_name(op) {
                Some(name) => write!(
                    f,
                    "pickle opcode {name} (0x{op:02x}) at byte {offset}: {}",
                    self.what
                ),
                None => write!(
                    f,
                    "pickle byte 0x{op:02x} at offset {offset}: {}",
                    self.what
                ),
            },
            None => write!(f, "pickle: {}", self.what),
        }
    }
}

impl std::error::Error for PickleError {}

type Result<T, E = PickleError> = std::result::Result<T, E>;

/// Reads the pickle in `input`: the value its `STOP` returns, with shared references copied
/// out and the numpy/bytes patterns recognised. Bytes and strings borrow from `input`.
pub fn load(input: &[u8]) -> Result<Value<'_>> {
    load_prefix(input).map(|(value, _)| value)
}

/// Reads the pickle at the start of `input`, as [`load`] does, and how many bytes it took
/// (up to and including its `STOP`): what follows may be another pickle, or raw data, as in
/// the legacy `torch.save` format.
pub fn load_prefix(input: &[u8]) -> Result<(Value<'_>, usize)> {
    let mut machine = Machine::new(input);
    let top = machine.run()?;
    let consumed = machine.pos;
    let mut resolver = Resolver::new(machine.arena, machine.shares, input.len());
    let resolved = resolver
        .resolve(top.value, 0)
        .map_err(|what| PickleError { at: None, what })?;
    Ok((resolved.value, consumed))
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// The name Python's `pickletools` gives an opcode.
fn opcode_name(code: u8) -> Option<&'static str> {
    use op::*;
    Some(match code {
        MARK => "MARK",
        STOP => "STOP",
        POP => "POP",
        POP_MARK => "POP_MARK",
        DUP => "DUP",
        FLOAT => "FLOAT",
        INT => "INT",
        BININT => "BININT",
        BININT1 => "BININT1",
        LONG => "LONG",
        BININT2 => "BININT2",
        NONE => "NONE",
        PERSID => "PERSID",
        BINPERSID => "BINPERSID",
        REDUCE => "REDUCE",
        STRING => "STRING",
        BINSTRING => "BINSTRING",
        SHORT_BINSTRING => "SHORT_BINSTRING",
        UNICODE => "UNICODE",
        BINUNICODE => "BINUNICODE",
        APPEND => "APPEND",
        BUILD => "BUILD",
        GLOBAL => "GLOBAL",
        DICT => "DICT",
        EMPTY_DICT => "EMPTY_DICT",
        APPENDS => "APPENDS",
        GET => "GET",
        BINGET => "BINGET",
        INST => "INST",
        LONG_BINGET => "LONG_BINGET",
        LIST => "LIST",
        EMPTY_LIST => "EMPTY_LIST",
        OBJ => "OBJ",
        PUT => "PUT",
        BINPUT => "BINPUT",
        LONG_BINPUT => "LONG_BINPUT",
        SETITEM => "SETITEM",
        TUPLE => "TUPLE",
        EMPTY_TUPLE => "EMPTY_TUPLE",
        SETITEMS => "SETITEMS",
        BINFLOAT => "BINFLOAT",
        PROTO => "PROTO",
        NEWOBJ => "NEWOBJ",
        EXT1 => "EXT1",
        EXT2 => "EXT2",
        EXT4 => "EXT4",
        TUPLE1 => "TUPLE1",
        TUPLE2 => "TUPLE2",
        TUPLE3 => "TUPLE3",
        NEWTRUE => "NEWTRUE",
        NEWFALSE => "NEWFALSE",
        LONG1 => "LONG1",
        LONG4 => "LONG4",
        BINBYTES => "BINBYTES",
        SHORT_BINBYTES => "SHORT_BINBYTES",
        SHORT_BINUNICODE => "SHORT_BINUNICODE",
        BINUNICODE8 => "BINUNICODE8",
        BINBYTES8 => "BINBYTES8",
        EMPTY_SET => "EMPTY_SET",
        ADDITEMS => "ADDITEMS",
        FROZENSET => "FROZENSET",
        NEWOBJ_EX => "NEWOBJ_EX",
        STACK_GLOBAL => "STACK_GLOBAL",
        MEMOIZE => "MEMOIZE",
        FRAME => "FRAME",
        BYTEARRAY8 => "BYTEARRAY8",
        NEXT_BUFFER => "NEXT_BUFFER",
        READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}

/// A value on the machine's stack or in its store, with the depth of its nesting.
struct Slot<'a> {
    value: Value<'a>,
    depth: usize,
}

impl<'a> Slot<'a> {
    fn leaf(value: Value<'a>) -> Self {
        Slot { value, depth: 0 }
    }
}

/// Which container a batch of items goes into (`APPENDS`, `SETITEMS`, `ADDITEMS`).
#[derive(Clone, Copy)]
enum Target {
    List,
    Dict,
    Set,
}

/// The pickle stack machine.
///
/// A memoised value is *moved* into `arena` and replaced by a [`Value::Ref`], so that later
/// `APPENDS`, `SETITEMS` or `BUILD` on it change the one shared value, as in Python; the
/// references are copied out once the pickle has been read.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset and code of the opcode being run, for errors.
    at: (usize, u8),
    stack: Vec<Slot<'a>>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    arena: Vec<Slot<'a>>,
    /// How many references to each arena value were made.
    shares: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Machine {
            input,
            pos: 0,
            at: (0, 0),
            stack: Vec::new(),
            marks: Vec::new(),
            arena: Vec::new(),
            shares: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn err(&self, what: impl Into<String>) -> PickleError {
        PickleError {
            at: Some(self.at),
            what: what.into(),
        }
    }

    fn run(&mut self) -> Result<Slot<'a>> {
        loop {
            let Some(&code) = self.input.get(self.pos) else {
                return Err(PickleError {
                    at: None,
                    what: format!(
                        "the input ends at byte {} without a STOP opcode (truncated?)",
                        self.input.len()
                    ),
                });
            };
            self.at = (self.pos, code);
            self.pos += 1;
            if code == op::STOP {
                return self.pop();
            }
            self.step(code)?;
        }
    }

    fn step(&mut self, code: u8) -> Result<()> {
        use op::*;
        match code {
            PROTO => self.proto(),
            FRAME => {
                // A frame only groups opcodes for buffered reading; its length must still fit.
                let n = self.u64()?;
                self.check_left(n).map(drop)
            }
            MARK => {
                self.marks.push(self.stack.len());
                Ok(())
            }
            POP => self.pop_or_mark(),
            POP_MARK => self.pop_mark().map(drop),
            DUP => {
                let a = self.share_top()?;
                self.push_ref(a);
                Ok(())
            }
            NONE => self.push_leaf(Value::None),
            NEWTRUE => self.push_leaf(Value::Bool(true)),
            NEWFALSE => self.push_leaf(Value::Bool(false)),
            INT => {
                let v = self.int_line()?;
                self.push_leaf(v)
            }
            LONG => {
                let line = self.line()?;
                let v = parse_int(line.trim_end_matches('L')).map_err(|w| self.err(w))?;
                self.push_leaf(Value::Int(v))
            }
            FLOAT => {
                let line = self.line()?;
                let v = line
                    .trim()
                    .parse()
                    .map_err(|_| self.err(format!("{line:?} is not a float")))?;
                self.push_leaf(Value::Float(v))
            }
            BININT => {
                let v = i32::from_le_bytes(self.array()?);
                self.push_leaf(Value::Int(v.into()))
            }
            BININT1 => {
                let v = self.byte()?;
                self.push_leaf(Value::Int(v.into()))
            }
            BININT2 => {
                let v = u16::from_le_bytes(self.array()?);
                self.push_leaf(Value::Int(v.into()))
            }
            LONG1 => {
                let n = self.byte()?.into();
                self.long(n)
            }
            LONG4 => {
                let n = self.len_i32()?;
                self.long(n)
            }
            BINFLOAT => {
                let v = f64::from_be_bytes(self.array()?);
                self.push_leaf(Value::Float(v))
            }
            SHORT_BINSTRING | SHORT_BINBYTES => {
                let n = self.byte()?.into();
                self.bytes(n)
            }
            BINSTRING => {
                let n = self.len_i32()?;
                self.bytes(n)
            }
            BINBYTES => {
                let n = self.len_u32()?;
                self.bytes(n)
            }
            BINBYTES8 | BYTEARRAY8 => {
                let n = self.len_u64()?;
                self.bytes(n)
            }
            SHORT_BINUNICODE => {
                let n = self.byte()?.into();
                self.unicode(n)
            }
            BINUNICODE => {
                let n = self.len_u32()?;
                self.unicode(n)
            }
            BINUNICODE8 => {
                let n = self.len_u64()?;
                self.unicode(n)
            }
            EMPTY_LIST => self.push_leaf(Value::List(Vec::new())),
            EMPTY_TUPLE => self.push_leaf(Value::Tuple(Vec::new())),
            EMPTY_DICT => self.push_leaf(Value::Dict(Vec::new())),
            EMPTY_SET => self.push_leaf(Value::Set(Vec::new())),
            LIST => {
                let items = self.pop_mark()?;
                self.push_container(items, Value::List)
            }
            TUPLE => {
                let items = self.pop_mark()?;
                self.push_container(items, Value::Tuple)
            }
            FROZENSET => {
                let items = self.pop_mark()?;
                self.push_container(items, Value::Set)
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let items = self.pop_n(usize::from(code - TUPLE1) + 1)?;
                self.push_container(items, Value::Tuple)
            }
            DICT => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.push_container(pairs, |values| Value::Dict(pair_up(values)))
            }
            APPEND => {
                let item = self.pop()?;
                self.add_to_target(vec![item], Target::List)
            }
            APPENDS => {
                let items = self.pop_mark()?;
                self.add_to_target(items, Target::List)
            }
            ADDITEMS => {
                let items = self.pop_mark()?;
                self.add_to_target(items, Target::Set)
            }
            SETITEM => {
                let items = self.pop_n(2)?;
                self.add_to_target(items, Target::Dict)
            }
            SETITEMS => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.add_to_target(pairs, Target::Dict)
            }
            GLOBAL => {
                let module = self.line()?.to_owned();
                let name = self.line()?.to_owned();
                self.push_leaf(Value::Global { module, name })
            }
            STACK_GLOBAL => {
                let name = self.pop_text()?;
                let module = self.pop_text()?;
                self.push_leaf(Value::Global { module, name })
            }
            REDUCE | NEWOBJ => {
                let [callable, args] = self.pop_array()?;
                if self.is_empty_ordered_dict(&callable, &args) {
                    // Read now, not at resolution: the SETITEMS that follow need a dict to fill.
                    self.drop_ref(&callable);
                    self.drop_ref(&args);
                    return self.push_leaf(Value::Dict(Vec::new()));
                }
                self.push_node([callable, args], |[c, a]| Value::Reduce {
                    callable: Box::new(c),
                    args: Box::new(a),
                })
            }
            PERSID => {
                let id = self.line()?;
                self.push_leaf(Value::PersId(Box::new(Value::Str(Cow::Borrowed(id)))))
            }
            BINPERSID => {
                let id = self.pop()?;
                self.push_node([id], |[v]| Value::PersId(Box::new(v)))
            }
            BUILD => self.build(),
            PUT => {
                let key = self.key_line()?;
                self.memoize(key)
            }
            BINPUT => {
                let key = self.byte()?.into();
                self.memoize(key)
            }
            LONG_BINPUT => {
                let key = u32::from_le_bytes(self.array()?).into();
                self.memoize(key)
            }
            MEMOIZE => self.memoize(self.memo.len() as u64),
            GET => {
                let key = self.key_line()?;
                self.get(key)
            }
            BINGET => {
                let key = self.byte()?.into();
                self.get(key)
            }
            LONG_BINGET => {
                let key = u32::from_le_bytes(self.array()?).into();
                self.get(key)
            }
            STRING | UNICODE | INST | OBJ | EXT1 | EXT2 | EXT4 | NEWOBJ_EX | NEXT_BUFFER
            | READONLY_BUFFER => {
                Err(self.err("not supported by this reader, which reads plain data only"))
            }
            _ => Err(self.err("not a pickle opcode (corrupt or not a pickle file)")),
        }
    }

    fn proto(&mut self) -> Result<()> {
        let v = self.byte()?;
        if v > HIGHEST_PROTOCOL {
            return Err(self.err(format!(
                "protocol {v} is newer than the newest known, {HIGHEST_PROTOCOL}"
            )));
        }
        Ok(())
    }

    // ----- reading the input -----

    /// Checks that `n` more bytes are there.
    fn check_left(&self, n: u64) -> Result<usize> {
        let left = self.input.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => Ok(n),
            _ => Err(self.err(format!(
                "needs {n} bytes but only {left} are left in the {}-byte input (truncated?)",
                self.input.len()
            ))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let n = self.check_left(n as u64)?;
        let input = self.input;
        let s = &input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len_i32(&mut self) -> Result<usize> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.err(format!("negative length {n}")))
    }

    fn len_u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        self.check_left(n)
    }

    /// A text argument of the protocol-0 opcodes: the bytes up to the next newline.
    fn line(&mut self) -> Result<&'a str> {
        let input = self.input;
        let rest = &input[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("its text argument has no end of line (truncated?)"));
        };
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| self.err("its text argument is not UTF-8"))
    }

    fn key_line(&mut self) -> Result<u64> {
        let line = self.line()?;
        line.trim()
            .parse()
            .map_err(|_| self.err(format!("{line:?} is not a memo key")))
    }

    /// `INT`'s argument: protocol 0 spells `True` and `False` as `01` and `00`.
    fn int_line(&mut self) -> Result<Value<'a>> {
        match self.line()? {
            "01" => Ok(Value::Bool(true)),
            "00" => Ok(Value::Bool(false)),
            line => parse_int(line).map(Value::Int).map_err(|w| self.err(w)),
        }
    }

    fn long(&mut self, n: usize) -> Result<()> {
        let bytes = self.take(n)?;
        let v = decode_long(bytes).map_err(|w| self.err(w))?;
        self.push_leaf(Value::Int(v))
    }

    fn bytes(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?;
        self.push_leaf(Value::Bytes(Cow::Borrowed(b)))
    }

    fn unicode(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?;
        let s =
            std::str::from_utf8(b).map_err(|e| self.err(format!("string is not UTF-8 ({e})")))?;
        self.push_leaf(Value::Str(Cow::Borrowed(s)))
    }

    // ----- the stack -----

    /// The stack length below which the innermost `MARK` protects the items.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push_leaf(&mut self, value: Value<'a>) -> Result<()> {
        self.stack.push(Slot::leaf(value));
        Ok(())
    }

    fn push_ref(&mut self, a: usize) {
        self.shares[a] += 1;
        self.stack.push(Slot::leaf(Value::Ref(a)));
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("values nest deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn push_container(
        &mut self,
        items: Vec<Slot<'a>>,
        make: impl FnOnce(Vec<Value<'a>>) -> Value<'a>,
    ) -> Result<()> {
        let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
        self.check_depth(depth)?;
        self.stack.push(Slot {
            value: make(items.into_iter().map(|s| s.value).collect()),
            depth,
        });
        Ok(())
    }

    fn push_node<const N: usize>(
        &mut self,
        items: [Slot<'a>; N],
        make: impl FnOnce([Value<'a>; N]) -> Value<'a>,
    ) -> Result<()> {
        let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
        self.check_depth(depth)?;
        self.stack.push(Slot {
            value: make(items.map(|s| s.value)),
            depth,
        });
        Ok(())
    }

    /// The index of the top of the stack, above the innermost mark.
    fn top(&self) -> Result<usize> {
        if self.stack.len() <= self.floor() {
            return Err(self.err(if self.marks.is_empty() {
                "the stack is empty"
            } else {
                "nothing on the stack above the MARK"
            }));
        }
        Ok(self.stack.len() - 1)
    }

    fn pop(&mut self) -> Result<Slot<'a>> {
        self.top()?;
        self.stack
            .pop()
            .ok_or_else(|| self.err("the stack is empty"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Slot<'a>>> {
        let have = self.stack.len() - self.floor();
        if have < n {
            return Err(self.err(format!("needs {n} values on the stack, found {have}")));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_array<const N: usize>(&mut self) -> Result<[Slot<'a>; N]> {
        let items = self.pop_n(N)?;
        // pop_n returned exactly N items.
        items
            .try_into()
            .map_err(|_| self.err("internal: wrong number of items"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Slot<'a>>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(mark))
    }

    fn pop_or_mark(&mut self) -> Result<()> {
        if self.stack.len() > self.floor() {
            self.stack.pop();
            Ok(())
        } else {
            self.pop_mark().map(drop)
        }
    }

    fn pop_text(&mut self) -> Result<String> {
        let slot = self.pop()?;
        let kind = slot.value.kind();
        match self.resolve_ref(slot.value) {
            Value::Str(s) => Ok(s.into_owned()),
            _ => Err(self.err(format!("needs module and name strings, found a {kind}"))),
        }
    }

    /// A copy of a shared string for `STACK_GLOBAL`, which Python 3 memoises before use.
    fn resolve_ref(&self, value: Value<'a>) -> Value<'a> {
        match value {
            Value::Ref(a) => match &self.arena[a].value {
                Value::Str(s) => Value::Str(s.clone()),
                _ => value,
            },
            _ => value,
        }
    }

    /// The value a slot holds, looking through a reference to a shared value.
    fn peek<'s>(&'s self, slot: &'s Slot<'a>) -> &'s Value<'a> {
        match slot.value {
            Value::Ref(a) => &self.arena[a].value,
            ref v => v,
        }
    }

    /// Whether `callable(*args)` is `collections.OrderedDict()`.
    fn is_empty_ordered_dict(&self, callable: &Slot<'a>, args: &Slot<'a>) -> bool {
        self.peek(callable).global() == Some(("collections", "OrderedDict"))
            && matches!(self.peek(args), Value::Tuple(items) if items.is_empty())
    }

    /// Forgets a reference that will not reach the result, so that the shared value's last
    /// real use moves it instead of copying it.
    fn drop_ref(&mut self, slot: &Slot<'a>) {
        if let Value::Ref(a) = slot.value {
            self.shares[a] = self.shares[a].saturating_sub(1);
        }
    }

    fn pairs(&self, items: Vec<Slot<'a>>) -> Result<Vec<Slot<'a>>> {
        if items.len() % 2 != 0 {
            return Err(self.err(format!(
                "needs key/value pairs, found {} items",
                items.len()
            )));
        }
        Ok(items)
    }

    // ----- shared values -----

    /// Moves the top of the stack into the arena (unless it is there already) and leaves a
    /// reference in its place; returns its arena index.
    fn share_top(&mut self) -> Result<usize> {
        let i = self.top()?;
        if let Value::Ref(a) = self.stack[i].value {
            return Ok(a);
        }
        let a = self.arena.len();
        let slot = std::mem::replace(&mut self.stack[i], Slot::leaf(Value::Ref(a)));
        self.arena.push(slot);
        self.shares.push(1);
        Ok(a)
    }

    fn memoize(&mut self, key: u64) -> Result<()> {
        let a = self.share_top()?;
        self.memo.insert(key, a);
        Ok(())
    }

    fn get(&mut self, key: u64) -> Result<()> {
        let a = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.push_ref(a);
        Ok(())
    }

    /// The value that `APPENDS`, `SETITEMS` and `BUILD` change: the top of the stack, or the
    /// shared value it refers to.
    fn target_mut(&mut self) -> Result<&mut Slot<'a>> {
        let i = self.top()?;
        match self.stack[i].value {
            Value::Ref(a) => Ok(&mut self.arena[a]),
            _ => Ok(&mut self.stack[i]),
        }
    }

    fn add_to_target(&mut self, items: Vec<Slot<'a>>, into: Target) -> Result<()> {
        let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
        self.check_depth(depth)?;
        let values = items.into_iter().map(|s| s.value);
        let target = self.target_mut()?;
        let added = match (&mut target.value, into) {
            (Value::List(list), Target::List) | (Value::Set(list), Target::Set) => {
                list.extend(values);
                true
            }
            (Value::Dict(dict), Target::Dict) => {
                dict.extend(pair_up(values.collect()));
                true
            }
            _ => false,
        };
        if !added {
            let found = target.value.kind();
            let wanted = match into {
                Target::List => "list",
                Target::Dict => "dict",
                Target::Set => "set",
            };
            return Err(self.err(format!("needs a {wanted} to add to, found a {found}")));
        }
        target.depth = target.depth.max(depth);
        Ok(())
    }

    fn build(&mut self) -> Result<()> {
        let state = self.pop()?;
        let target = self.target_mut()?;
        let depth = 1 + target.depth.max(state.depth);
        let object = std::mem::replace(&mut target.value, Value::None);
        target.value = Value::Build {
            object: Box::new(object),
            state: Box::new(state.value),
        };
        target.depth = depth;
        self.check_depth(depth)
    }
}

/// `[k1, v1, k2, v2...]` as `[(k1, v1), (k2, v2)...]`; callers checked the count is even.
fn pair_up(values: Vec<Value<'_>>) -> Vec<(Value<'_>, Value<'_>)> {
    let mut values = values.into_iter();
    let mut pairs = Vec::with_capacity(values.len() / 2);
    while let (Some(k), Some(v)) = (values.next(), values.next()) {
        pairs.push((k, v));
    }
    pairs
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an integer that fits in 64 bits"))
}

/// A little-endian two's-complement integer of any length (`LONG1`, `LONG4`).
fn decode_long(bytes: &[u8]) -> Result<i64, String> {
    let Some(&last) = bytes.last() else {
        return Ok(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    // Bytes past the eighth must only repeat the sign, and the sign must agree with bit 63.
    let fits = high.iter().all(|&b| b == fill)
        && (high.is_empty() || (low[7] & 0x80 != 0) == (fill == 0xff));
    if !fits {
        return Err(format!(
            "a {}-byte integer does not fit in 64 bits",
            bytes.len()
        ));
    }
    let mut buf = [fill; 8];
    buf[..low.len()].copy_from_slice(low);
    Ok(i64::from_le_bytes(buf))
}

// ----- resolution: copying shared values out, recognising patterns -----

enum Entry<'a> {
    Pending(Value<'a>),
    InProgress,
    Done(Resolved<'a>),
    Taken,
}

#[derive(Clone)]
struct Resolved<'a> {
    value: Value<'a>,
    /// Levels of nesting below the value.
    height: usize,
    /// Number of values in it, counting itself.
    nodes: usize,
}

impl<'a> Resolved<'a> {
    fn leaf(value: Value<'a>) -> Self {
        Resolved {
            value,
            height: 0,
            nodes: 1,
        }
    }
}

/// Replaces references by the values they share and recognises numpy and `bytes` patterns,
/// bottom-up. A value referred to once is moved; more references copy it, within a budget.
struct Resolver<'a> {
    entries: Vec<Entry<'a>>,
    uses_left: Vec<usize>,
    budget: usize,
}

impl<'a> Resolver<'a> {
    fn new(arena: Vec<Slot<'a>>, shares: Vec<usize>, input_len: usize) -> Self {
        Resolver {
            entries: arena.into_iter().map(|s| Entry::Pending(s.value)).collect(),
            uses_left: shares,
            budget: input_len.saturating_add(SHARED_SLACK),
        }
    }

    fn resolve(&mut self, value: Value<'a>, depth: usize) -> Result<Resolved<'a>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        match value {
            Value::Ref(a) => self.shared(a, depth),
            Value::List(items) => self.sequence(items, depth, Value::List),
            Value::Tuple(items) => self.sequence(items, depth, Value::Tuple),
            Value::Set(items) => self.sequence(items, depth, Value::Set),
            Value::Dict(pairs) => self.dict(pairs, depth),
            Value::Reduce { callable, args } => {
                let [c, a] = self.children([*callable, *args], depth)?;
                Ok(Resolved {
                    value: simplify_reduce(c.0, a.0)?,
                    height: 1 + c.1.max(a.1),
                    nodes: 1 + c.2 + a.2,
                })
            }
            Value::PersId(id) => {
                let [i] = self.children([*id], depth)?;
                Ok(Resolved {
                    value: Value::PersId(Box::new(i.0)),
                    height: 1 + i.1,
                    nodes: 1 + i.2,
                })
            }
            Value::Build { object, state } => {
                let [o, s] = self.children([*object, *state], depth)?;
                Ok(Resolved {
                    value: simplify_build(o.0, s.0)?,
                    height: 1 + o.1.max(s.1),
                    nodes: 1 + o.2 + s.2,
                })
            }
            leaf => Ok(Resolved::leaf(leaf)),
        }
    }

    /// Resolves the values of a node: (value, height, nodes) of each.
    fn children<const N: usize>(
        &mut self,
        values: [Value<'a>; N],
        depth: usize,
    ) -> Result<[(Value<'a>, usize, usize); N], String> {
        let mut out = Vec::with_capacity(N);
        for v in values {
            let r = self.resolve(v, depth + 1)?;
            out.push((r.value, r.height, r.nodes));
        }
        out.try_into()
            .map_err(|_| "internal: wrong number of children".to_owned())
    }

    fn sequence(
        &mut self,
        items: Vec<Value<'a>>,
        depth: usize,
        make: fn(Vec<Value<'a>>) -> Value<'a>,
    ) -> Result<Resolved<'a>, String> {
        let (mut height, mut nodes) = (0, 1);
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let r = self.resolve(item, depth + 1)?;
            height = height.max(r.height + 1);
            nodes += r.nodes;
            out.push(r.value);
        }
        Ok(Resolved {
            value: make(out),
            height,
            nodes,
        })
    }

    fn dict(
        &mut self,
        pairs: Vec<(Value<'a>, Value<'a>)>,
        depth: usize,
    ) -> Result<Resolved<'a>, String> {
        let (mut height, mut nodes) = (0, 1);
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let [k, v] = self.children([k, v], depth)?;
            height = height.max(k.1.max(v.1) + 1);
            nodes += k.2 + v.2;
            out.push((k.0, v.0));
        }
        Ok(Resolved {
            value: Value::Dict(out),
            height,
            nodes,
        })
    }

    fn shared(&mut self, a: usize, depth: usize) -> Result<Resolved<'a>, String> {
        let resolved = match std::mem::replace(&mut self.entries[a], Entry::InProgress) {
            Entry::Pending(v) => self.resolve(v, depth)?,
            Entry::Done(r) => r,
            Entry::InProgress => {
                return Err("a value contains itself (a recursive structure)".to_owned());
            }
            Entry::Taken => {
                return Err("internal: a shared value was used more often than counted".to_owned());
            }
        };
        if depth + resolved.height > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        self.uses_left[a] = self.uses_left[a].saturating_sub(1);
        if self.uses_left[a] == 0 {
            self.entries[a] = Entry::Taken;
            return Ok(resolved);
        }
        self.budget = self.budget.checked_sub(resolved.nodes).ok_or_else(|| {
            "shared references expand to more values than the input could hold (a decompression bomb?)".to_owned()
        })?;
        self.entries[a] = Entry::Done(resolved.clone());
        Ok(resolved)
    }
}

fn is_numpy_core(module: &str, sub: &str) -> bool {
    module
        .strip_prefix("numpy.core.")
        .or_else(|| module.strip_prefix("numpy._core."))
        == Some(sub)
}

fn generic_reduce<'a>(callable: Value<'a>, args: Value<'a>) -> Value<'a> {
    Value::Reduce {
        callable: Box::new(callable),
        args: Box::new(args),
    }
}

/// The calls that stand for data.
enum KnownCall {
    /// `_codecs.encode`, `bytes`, `bytearray`.
    Bytes,
    /// `numpy.dtype`.
    Dtype,
    /// `numpy.core.multiarray.scalar`.
    Scalar,
    /// `numpy.core.numeric._frombuffer` (protocol 5).
    FromBuffer,
}

fn known_call(callable: &Value<'_>) -> Option<(KnownCall, String)> {
    let (module, name) = callable.global()?;
    let known = match (module, name) {
        ("_codecs" | "codecs", "encode") | ("__builtin__" | "builtins", "bytes" | "bytearray") => {
            KnownCall::Bytes
        }
        ("numpy", "dtype") => KnownCall::Dtype,
        (m, "scalar") if is_numpy_core(m, "multiarray") => KnownCall::Scalar,
        (m, "_frombuffer") if is_numpy_core(m, "numeric") => KnownCall::FromBuffer,
        _ => return None,
    };
    Some((known, format!("{module}.{name}")))
}

/// Recognises the calls that stand for data; other calls stay descriptions.
fn simplify_reduce<'a>(callable: Value<'a>, args: Value<'a>) -> Result<Value<'a>, String> {
    match known_call(&callable) {
        Some((KnownCall::Bytes, what)) => bytes_from_args(args, &what).map(Value::Bytes),
        Some((KnownCall::Dtype, _)) => dtype_from_args(args).map(Value::Dtype),
        Some((KnownCall::Scalar, _)) => Ok(scalar(callable, args)),
        Some((KnownCall::FromBuffer, _)) => frombuffer(args).map(Value::NdArray),
        None => Ok(generic_reduce(callable, args)),
    }
}

/// Recognises `BUILD` on a numpy dtype or on a `_reconstruct`ed array.
fn simplify_build<'a>(object: Value<'a>, state: Value<'a>) -> Result<Value<'a>, String> {
    match object {
        Value::Dtype(mut dtype) => {
            // numpy's dtype state: (version, byte order, ...).
            if let Some(order) = state
                .as_items()
                .and_then(|s| s.get(1))
                .and_then(Value::as_text)
            {
                dtype.byte_order = order.chars().next().unwrap_or(dtype.byte_order);
            }
            Ok(Value::Dtype(dtype))
        }
        Value::Reduce { callable, .. } if matches!(callable.global(), Some((m, "_reconstruct")) if is_numpy_core(m, "multiarray")) => {
            ndarray_from_state(state).map(Value::NdArray)
        }
        object => Ok(Value::Build {
            object: Box::new(object),
            state: Box::new(state),
        }),
    }
}

/// `bytes()`, `bytes(b)`, `_codecs.encode(s, 'latin1')`, `bytearray(s, 'latin-1')`.
fn bytes_from_args<'a>(args: Value<'a>, what: &str) -> Result<Cow<'a, [u8]>, String> {
    let items = args
        .into_items()
        .ok_or_else(|| format!("{what} needs an argument tuple"))?;
    let mut items = items.into_iter();
    match (items.next(), items.next(), items.next()) {
        (None, ..) => Ok(Cow::Borrowed(&[])),
        (Some(Value::Bytes(b)), None, _) => Ok(b),
        (Some(Value::Str(s)), Some(encoding), None) => {
            latin1(&s, encoding.as_text().unwrap_or(""), what)
        }
        _ => Err(format!(
            "{what} with arguments other than (), (bytes,) or (str, encoding)"
        )),
    }
}

/// The latin-1 bytes of `text`: the inverse of Python 3 reading a Python 2 string as latin-1,
/// which is how protocol 2 carries `bytes` (a numpy array's whole data, for CIFAR).
fn latin1<'a>(text: &str, encoding: &str, what: &str) -> Result<Cow<'a, [u8]>, String> {
    if !matches!(
        encoding.to_ascii_lowercase().as_str(),
        "latin1" | "latin-1" | "latin_1" | "iso-8859-1"
    ) {
        return Err(format!(
            "{what} with encoding {encoding:?}, expected latin1"
        ));
    }
    // In UTF-8, U+0000..U+007F are one byte and U+0080..U+00FF two, led by 0xC2 or 0xC3.
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, bytes.get(i + 1)) {
            (0..=0x7f, _) => {
                out.push(b);
                i += 1;
            }
            (0xc2 | 0xc3, Some(&next)) => {
                out.push(((b & 0x03) << 6) | (next & 0x3f));
                i += 2;
            }
            // `i` is at a character boundary: it only ever moves by whole characters.
            _ => {
                let c = text[i..].chars().next().unwrap_or_default();
                return Err(format!("{what}: character {c:?} is not latin-1"));
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// `numpy.dtype('u1', False, True)`: the byte order comes later, from `BUILD`.
fn dtype_from_args(args: Value<'_>) -> Result<Dtype, String> {
    let code = args
        .as_items()
        .and_then(|a| a.first())
        .and_then(Value::as_text);
    let code = code.ok_or_else(|| "numpy.dtype without a type code".to_owned())?;
    Ok(Dtype {
        code: code.to_owned(),
        byte_order: '=',
    })
}

/// `numpy.core.multiarray.scalar(dtype, bytes)`: a numpy integer, float or bool; other
/// scalars stay descriptions.
fn scalar<'a>(callable: Value<'a>, args: Value<'a>) -> Value<'a> {
    let decoded = match args.as_items() {
        Some([Value::Dtype(d), Value::Bytes(b)]) if d.item_size() == Some(b.len()) => {
            match (d.kind(), b.len()) {
                ('b', 1) => Some(Value::Bool(b[0] != 0)),
                ('i' | 'u', _) => d.int_at(b).map(Value::Int),
                ('f', 8) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    Some(Value::Float(if d.big_endian() {
                        f64::from_be_bytes(a)
                    } else {
                        f64::from_le_bytes(a)
                    }))
                }
                _ => None,
            }
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| generic_reduce(callable, args))
}

fn shape_of(value: &Value<'_>) -> Result<Vec<usize>, String> {
    let items = value
        .as_items()
        .ok_or_else(|| format!("numpy array shape is a {}, not a tuple", value.kind()))?;
    items
        .iter()
        .map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            "numpy array shape holds something other than non-negative integers".to_owned()
        })
}

fn array_data<'a>(data: Value<'a>) -> Result<Cow<'a, [u8]>, String> {
    match data {
        Value::Bytes(b) => Ok(b),
        Value::List(_) => Err("numpy arrays of Python objects are not supported".to_owned()),
        other => Err(format!(
            "numpy array data is a {}, expected bytes",
            other.kind()
        )),
    }
}

/// The state `BUILD` gives a `_reconstruct`ed array: `(version, shape, dtype, is_fortran,
/// data)`, or the same without the version (numpy before 1.0).
fn ndarray_from_state(state: Value<'_>) -> Result<NdArray<'_>, String> {
    let kind = state.kind();
    let mut items = state
        .into_items()
        .ok_or_else(|| format!("numpy array state is a {kind}, not a tuple"))?;
    let count = items.len();
    if count == 5 {
        items.remove(0);
    }
    let [shape, dtype, fortran, data] = <[Value; 4]>::try_from(items)
        .map_err(|_| format!("numpy array state has {count} items, expected 4 or 5"))?;
    let Value::Dtype(dtype) = dtype else {
        return Err(format!(
            "numpy array dtype is a {}, not a dtype",
            dtype.kind()
        ));
    };
    let fortran = fortran
        .as_int()
        .ok_or_else(|| "numpy array's Fortran flag is not a bool".to_owned())?
        != 0;
    NdArray::new(shape_of(&shape)?, dtype, fortran, array_data(data)?)
}

/// Protocol 5's `_frombuffer(buffer, dtype, shape, order)`.
fn frombuffer(args: Value<'_>) -> Result<NdArray<'_>, String> {
    let items = args
        .into_items()
        .ok_or_else(|| "numpy _frombuffer needs an argument tuple".to_owned())?;
    let [buffer, dtype, shape, order] = <[Value; 4]>::try_from(items).map_err(|items| {
        format!(
            "numpy _frombuffer has {} arguments, expected 4",
            items.len()
        )
    })?;
    let Value::Dtype(dtype) = dtype else {
        return Err(format!(
            "numpy _frombuffer dtype is a {}, not a dtype",
            dtype.kind()
        ));
    };
    let fortran = order.as_text() == Some("F");
    NdArray::new(shape_of(&shape)?, dtype, fortran, array_data(buffer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(s))
    }

    fn bytes(b: &[u8]) -> Value<'_> {
        Value::Bytes(Cow::Borrowed(b))
    }

    fn err(input: &[u8]) -> String {
        load(input).unwrap_err().to_string()
    }

    // Pickles written by CPython 3.11 and numpy 2.4: `pickle.dumps(x, protocol=p)`.

    /// `{b'data': np.arange(6, dtype=np.uint8).reshape(2, 3), 'labels': [1, 2]}`, protocol 2.
    const PROTO2_ARRAY: &[u8] = b"\x80\x02}q\x00(c_codecs\x0aencode\x0aq\x01X\x04\x00\x00\x00dataq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05cnumpy._core.multiarray\x0a_reconstruct\x0aq\x06cnumpy\x0andarray\x0aq\x07K\x00\x85q\x08h\x01X\x01\x00\x00\x00bq\x09h\x03\x86q\x0aRq\x0b\x87q\x0cRq\x0d(K\x01K\x02K\x03\x86q\x0ecnumpy\x0adtype\x0aq\x0fX\x02\x00\x00\x00u1q\x10\x89\x88\x87q\x11Rq\x12(K\x03X\x01\x00\x00\x00|q\x13NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x14b\x89h\x01X\x06\x00\x00\x00\x00\x01\x02\x03\x04\x05q\x15h\x03\x86q\x16Rq\x17tq\x18bX\x06\x00\x00\x00labelsq\x19]q\x1a(K\x01K\x02eu.";

    /// The same, protocol 4.
    const PROTO4_ARRAY: &[u8] = b"\x80\x04\x95\xad\x00\x00\x00\x00\x00\x00\x00}\x94(C\x04data\x94\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02K\x03\x86\x94h\x05\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x06\x00\x01\x02\x03\x04\x05\x94t\x94b\x8c\x06labels\x94]\x94(K\x01K\x02eu.";

    /// The same, protocol 5 (`_frombuffer` of an in-band `bytearray`).
    const PROTO5_ARRAY: &[u8] = b"\x80\x05\x95\x98\x00\x00\x00\x00\x00\x00\x00}\x94(C\x04data\x94\x8c\x13numpy._core.numeric\x94\x8c\x0b_frombuffer\x94\x93\x94(\x96\x06\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x94\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bK\x02K\x03\x86\x94\x8c\x01C\x94t\x94R\x94\x8c\x06labels\x94]\x94(K\x01K\x02eu.";

    fn check_array_dict(input: &[u8]) {
        let mut v = load(input).unwrap();
        let labels = v.take_entry("labels").unwrap();
        assert_eq!(labels, Value::List(vec![Value::Int(1), Value::Int(2)]));
        let Some(Value::NdArray(a)) = v.take_entry("data") else {
            panic!("no array in {v:?}")
        };
        assert_eq!(a.shape, vec![2, 3]);
        assert!(a.dtype.is_u8());
        assert!(!a.fortran_order);
        assert_eq!(&*a.data, &[0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn reads_numpy_arrays_of_protocols_2_4_and_5() {
        check_array_dict(PROTO2_ARRAY);
        check_array_dict(PROTO4_ARRAY);
        check_array_dict(PROTO5_ARRAY);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for input in [PROTO2_ARRAY, PROTO4_ARRAY, PROTO5_ARRAY] {
            for end in 0..input.len() - 1 {
                assert!(
                    load(&input[..end]).is_err(),
                    "prefix of {end} bytes was accepted"
                );
            }
        }
        assert!(
            err(&PROTO4_ARRAY[..50]).contains("truncated"),
            "{}",
            err(&PROTO4_ARRAY[..50])
        );
        // The pickle's last opcode is STOP: without it the input ends before any result.
        let e = err(&PROTO2_ARRAY[..PROTO2_ARRAY.len() - 1]);
        assert!(e.contains("without a STOP"), "{e}");
    }

    #[test]
    fn corrupted_bytes_give_errors_or_values_never_panics() {
        for input in [PROTO2_ARRAY, PROTO4_ARRAY, PROTO5_ARRAY] {
            for i in 0..input.len() {
                for b in [0x00, 0x28, 0x2e, 0x71, 0x80, 0x94, 0xff] {
                    let mut bad = input.to_vec();
                    bad[i] = b;
                    let _ = load(&bad);
                }
            }
        }
    }

    #[test]
    fn errors_name_the_offset_and_opcode() {
        // PROTO 2, then SHORT_BINSTRING claiming 9 bytes with 2 left.
        let e = err(b"\x80\x02U\x09ab");
        assert_eq!(
            e,
            "pickle opcode SHORT_BINSTRING (0x55) at byte 2: needs 9 bytes but only 2 are left in the 6-byte input (truncated?)"
        );
        let e = err(b"\x80\x02\xff.");
        assert_eq!(
            e,
            "pickle byte 0xff at offset 2: not a pickle opcode (corrupt or not a pickle file)"
        );
        let e = err(b"\x80\x02N\x81.");
        assert!(
            e.starts_with("pickle opcode NEWOBJ (0x81) at byte 3: needs 2 values"),
            "{e}"
        );
        assert!(err(b"\x80\x06N.").contains("protocol 6"));
        assert!(err(b"ccopy_reg\n_reconstructor\nN(i.").contains("INST"));
        assert!(err(b"h\x05.").contains("memo key 5 was never stored"));
        assert!(err(b"e.").contains("no MARK"));
        assert!(err(b"K\x01a.").contains("the stack is empty"));
        assert!(err(b"N(K\x01a.").starts_with(
            "pickle opcode APPEND (0x61) at byte 4: nothing on the stack above the MARK"
        ));
        assert!(err(b"NK\x01a.").contains("needs a list to add to, found a None"));
        assert!(err(b"(K\x01d.").contains("key/value pairs"));
        assert!(err(b"T\xff\xff\xff\xff.").contains("negative length -1"));
        assert!(err(b"").contains("without a STOP"));
    }

    #[test]
    fn reads_scalars_strings_and_containers() {
        // Protocol-0 and -1 opcodes as Python 2 wrote them, then protocol-2 ones.
        assert_eq!(load(b"I01\n.").unwrap(), Value::Bool(true));
        assert_eq!(load(b"I-7\n.").unwrap(), Value::Int(-7));
        assert_eq!(load(b"L12345678901L\n.").unwrap(), Value::Int(12345678901));
        assert_eq!(load(b"F0.5\n.").unwrap(), Value::Float(0.5));
        assert_eq!(
            load(b"G?\xf0\x00\x00\x00\x00\x00\x00.").unwrap(),
            Value::Float(1.0)
        );
        assert_eq!(load(b"J\xfe\xff\xff\xff.").unwrap(), Value::Int(-2));
        assert_eq!(load(b"M\x10'.").unwrap(), Value::Int(10000));
        assert_eq!(load(b"\x8a\x02\x00\x80.").unwrap(), Value::Int(-32768));
        assert_eq!(
            load(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00.").unwrap(),
            Value::Int(i64::MAX)
        );
        assert!(
            err(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.")
                .contains("does not fit in 64 bits")
        );
        assert_eq!(load(b"\x8a\x00.").unwrap(), Value::Int(0));
        assert_eq!(load(b"U\x03abc.").unwrap(), bytes(b"abc"));
        assert_eq!(load(b"\x8c\x03\xc3\xa9t.").unwrap(), text("\u{e9}t"));
        assert!(err(b"\x8c\x01\xff.").contains("not UTF-8"));
        assert_eq!(
            load(b"(K\x01K\x02tq\x00h\x00\x86.").unwrap(),
            Value::Tuple(vec![
                Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
                Value::Tuple(vec![Value::Int(1), Value::Int(2)])
            ])
        );
        assert_eq!(
            load(b"\x8f(K\x01\x90(K\x02\x91\x86.").unwrap(),
            Value::Tuple(vec![
                Value::Set(vec![Value::Int(1)]),
                Value::Set(vec![Value::Int(2)])
            ])
        );
        // SETITEM, DICT, POP, POP_MARK, DUP.
        assert_eq!(
            load(b"}U\x01aK\x01s(U\x01bK\x02d(N1N02\x86\x86.").unwrap(),
            Value::Tuple(vec![
                Value::Dict(vec![(bytes(b"a"), Value::Int(1))]),
                Value::Tuple(vec![
                    Value::Dict(vec![(bytes(b"b"), Value::Int(2))]),
                    Value::Dict(vec![(bytes(b"b"), Value::Int(2))])
                ])
            ])
        );
    }

    #[test]
    fn calls_are_described_not_executed() {
        let v = load(b"cos\nsystem\nU\x02ls\x85R.").unwrap();
        assert_eq!(
            v,
            Value::Reduce {
                callable: Box::new(Value::Global {
                    module: "os".into(),
                    name: "system".into()
                }),
                args: Box::new(Value::Tuple(vec![bytes(b"ls")])),
            }
        );
    }

    #[test]
    fn shared_lists_see_later_appends() {
        // l = []; (l, l) pickled as: EMPTY_LIST PUT, MARK APPENDS after GET.
        let v = load(b"]q\x00h\x00(K\x07e\x86.").unwrap();
        let seven = Value::List(vec![Value::Int(7)]);
        assert_eq!(v, Value::Tuple(vec![seven.clone(), seven]));
    }

    #[test]
    fn recursion_depth_and_expansion_are_bounded() {
        // l = []; l.append(l).
        assert!(err(b"]q\x00h\x00a.").contains("contains itself"));
        // 100 000 nested one-item lists.
        let n = 100_000;
        let mut deep = vec![b'('; n];
        deep.extend(std::iter::repeat_n(b'l', n));
        deep.push(b'.');
        assert!(err(&deep).contains("deeper than 64"));
        // Nesting through memo references: each list holds the previous one.
        let mut chain = b"]q\x00".to_vec();
        for i in 1..=200u32 {
            chain.extend(b"]r");
            chain.extend(i.to_le_bytes());
            chain.push(b'j');
            chain.extend((i - 1).to_le_bytes());
            chain.push(b'a');
        }
        chain.push(b'.');
        assert!(err(&chain).contains("deeper than 64"));
        // A billion laughs: each level is a list of ten references to the previous level.
        let mut laughs = b"U\x02loq\x00".to_vec();
        for i in 1..=9u8 {
            laughs.push(b'(');
            for _ in 0..10 {
                laughs.extend([b'h', i - 1]);
            }
            laughs.extend([b'l', b'q', i]);
        }
        laughs.push(b'.');
        assert!(err(&laughs).contains("more values than the input could hold"));
    }

    /// `np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3))`, protocol 4.
    const FORTRAN_ARRAY: &[u8] = b"\x80\x04\x95\x91\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02K\x03\x86\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x88C\x06\x00\x03\x01\x04\x02\x05\x94t\x94b.";

    #[test]
    fn fortran_arrays_are_reordered_and_integer_arrays_decoded() {
        let Value::NdArray(a) = load(FORTRAN_ARRAY).unwrap() else {
            panic!("not an array")
        };
        assert!(a.fortran_order);
        assert_eq!(&*a.into_c_order(), &[0, 1, 2, 3, 4, 5]);
        let dtype = Dtype {
            code: "u1".into(),
            byte_order: '|',
        };
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        let a = NdArray::new(vec![2, 3], dtype, true, Cow::Borrowed(&[0, 3, 1, 4, 2, 5])).unwrap();
        assert_eq!(&*a.into_c_order(), &[0, 1, 2, 3, 4, 5]);
        let i16be = Dtype {
            code: "i2".into(),
            byte_order: '>',
        };
        let a = NdArray::new(
            vec![2],
            i16be,
            false,
            Cow::Borrowed(&[0xff, 0xfe, 0x01, 0x00]),
        )
        .unwrap();
        assert_eq!(a.to_ints(), Some(vec![-2, 256]));
        let u8s = Dtype {
            code: "u1".into(),
            byte_order: '|',
        };
        let e = NdArray::new(vec![2, 3], u8s, false, Cow::Borrowed(&[0; 5])).unwrap_err();
        assert_eq!(
            e,
            "numpy array of shape (2, 3) and dtype |u1 needs 6 bytes of data, found 5"
        );
    }

    /// Bytes that are mostly opcodes, so that random sequences run deep into the machine.
    fn opcode_soup() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        let mut alphabet: Vec<u8> = (0..=255u8).filter(|&b| opcode_name(b).is_some()).collect();
        alphabet.extend([0, 1, 2, 3, 0xff, b'\n', b'0', b'1']);
        proptest::collection::vec(proptest::sample::select(alphabet), 0..400)
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = load(&bytes);
        }

        #[test]
        fn random_opcode_sequences_never_panic(bytes in opcode_soup()) {
            let _ = load(&bytes);
            let mut framed = b"\x80\x04".to_vec();
            framed.extend(&bytes);
            let _ = load(&framed);
        }
    }

    #[test]
    fn latin1_encoding_is_the_inverse_of_reading_bytes_as_latin1() {
        let all: String = (0u8..=255).map(char::from).collect();
        let bytes = latin1(&all, "latin1", "t").unwrap();
        assert_eq!(&*bytes, (0u8..=255).collect::<Vec<_>>().as_slice());
        assert!(
            latin1("a\u{100}", "latin1", "t")
                .unwrap_err()
                .contains("'\u{100}' is not latin-1")
        );
        assert!(
            latin1("a", "utf-8", "t")
                .unwrap_err()
                .contains("expected latin1")
        );
    }

    // PyTorch 2.11's `data.pkl` for `torch.nn.Linear(2, 1)`: its state_dict is an OrderedDict
    // (filled by SETITEMS, then given `_metadata` by BUILD) of `_rebuild_tensor_v2` calls on
    // storages referenced by persistent ids.

    /// `torch.save({'model': lin.state_dict(), 'epoch': 1})`, protocol 2 (torch's default).
    const TORCH_WRAPPED: &[u8] = b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01ccollections\x0aOrderedDict\x0aq\x02)Rq\x03(X\x06\x00\x00\x00weightq\x04ctorch._utils\x0a_rebuild_tensor_v2\x0aq\x05((X\x07\x00\x00\x00storageq\x06ctorch\x0aFloatStorage\x0aq\x07X\x01\x00\x00\x000q\x08X\x03\x00\x00\x00cpuq\x09K\x02tq\x0aQK\x00K\x01K\x02\x86q\x0bK\x02K\x01\x86q\x0c\x89h\x02)Rq\x0dtq\x0eRq\x0fX\x04\x00\x00\x00biasq\x10h\x05((h\x06h\x07X\x01\x00\x00\x001q\x11h\x09K\x01tq\x12QK\x00K\x01\x85q\x13K\x01\x85q\x14\x89h\x02)Rq\x15tq\x16Rq\x17u}q\x18X\x09\x00\x00\x00_metadataq\x19h\x02)Rq\x1aX\x00\x00\x00\x00q\x1b}q\x1cX\x07\x00\x00\x00versionq\x1dK\x01sssbX\x05\x00\x00\x00epochq\x1eK\x01u.";

    /// `torch.save(lin.state_dict(), pickle_protocol=4)`.
    const TORCH_PROTO4: &[u8] = b"\x80\x04\x95\xf5\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x06weight\x94\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94\x93\x94((\x8c\x07storage\x94\x8c\x05torch\x94\x8c\x0cFloatStorage\x94\x93\x94\x8c\x010\x94\x8c\x03cpu\x94K\x02t\x94QK\x00K\x01K\x02\x86\x94K\x02K\x01\x86\x94\x89h\x02)R\x94t\x94R\x94\x8c\x04bias\x94h\x07((h\x08h\x0b\x8c\x011\x94h\x0dK\x01t\x94QK\x00K\x01\x85\x94K\x01\x85\x94\x89h\x02)R\x94t\x94R\x94u}\x94\x8c\x09_metadata\x94h\x02)R\x94\x8c\x00\x94}\x94\x8c\x07version\x94K\x01sssb.";

    /// `('storage', torch.FloatStorage, key, 'cpu', numel)`.
    fn storage_id(key: &str, numel: i64) -> Value<'_> {
        Value::PersId(Box::new(Value::Tuple(vec![
            text("storage"),
            Value::Global {
                module: "torch".into(),
                name: "FloatStorage".into(),
            },
            text(key),
            text("cpu"),
            Value::Int(numel),
        ])))
    }

    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`.
    fn rebuild<'a>(storage: Value<'a>, size: &[i64], stride: &[i64]) -> Value<'a> {
        let ints = |v: &[i64]| Value::Tuple(v.iter().map(|&i| Value::Int(i)).collect());
        Value::Reduce {
            callable: Box::new(Value::Global {
                module: "torch._utils".into(),
                name: "_rebuild_tensor_v2".into(),
            }),
            args: Box::new(Value::Tuple(vec![
                storage,
                Value::Int(0),
                ints(size),
                ints(stride),
                Value::Bool(false),
                Value::Dict(Vec::new()),
            ])),
        }
    }

    fn check_linear_state_dict(sd: &Value<'_>) {
        let pairs = sd.as_dict().expect("the state_dict reads as a dict");
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].0.as_text(), Some("weight"));
        assert_eq!(pairs[0].1, rebuild(storage_id("0", 2), &[1, 2], &[2, 1]));
        assert_eq!(pairs[1].0.as_text(), Some("bias"));
        assert_eq!(pairs[1].1, rebuild(storage_id("1", 1), &[1], &[1]));
        // The `_metadata` attribute stays in the description, apart from the pairs.
        let Value::Build { state, .. } = sd else {
            panic!("no BUILD in {sd:?}")
        };
        let meta = state.as_dict().unwrap();
        assert_eq!(meta[0].0.as_text(), Some("_metadata"));
        let version = meta[0].1.as_dict().unwrap()[0].1.as_dict().unwrap();
        assert_eq!(version[0], (text("version"), Value::Int(1)));
    }

    #[test]
    fn reads_torch_checkpoints_with_persistent_ids() {
        let mut top = load(TORCH_WRAPPED).unwrap();
        assert_eq!(top.text_keys(), ["model", "epoch"]);
        assert_eq!(top.take_entry("epoch"), Some(Value::Int(1)));
        check_linear_state_dict(&top.take_entry("model").unwrap());
        check_linear_state_dict(&load(TORCH_PROTO4).unwrap());
    }

    #[test]
    fn load_prefix_reports_the_bytes_of_one_pickle() {
        // Two pickles back to back, then raw bytes.
        let input = b"\x80\x02K\x07.\x80\x02X\x01\x00\x00\x00aq\x00.\xff\xfe";
        let (first, n) = load_prefix(input).unwrap();
        assert_eq!((first, n), (Value::Int(7), 5));
        let (second, m) = load_prefix(&input[n..]).unwrap();
        assert_eq!(second.as_text(), Some("a"));
        assert_eq!(&input[n + m..], b"\xff\xfe");
        assert!(
            load_prefix(&input[..4])
                .unwrap_err()
                .to_string()
                .contains("without a STOP")
        );
    }

    #[test]
    fn persistent_ids_of_protocol_0_and_1() {
        assert_eq!(
            load(b"Pstorage0\n.").unwrap(),
            Value::PersId(Box::new(text("storage0")))
        );
        assert_eq!(
            load(b"(K\x01K\x02tQ.").unwrap(),
            Value::PersId(Box::new(Value::Tuple(vec![Value::Int(1), Value::Int(2)])))
        );
        assert_eq!(load(b"N\x85Q.").unwrap().kind(), "persistent id");
        assert!(
            err(b"Q.").starts_with("pickle opcode BINPERSID (0x51) at byte 0: the stack is empty")
        );
        assert!(err(b"(Q.").contains("nothing on the stack above the MARK"));
        assert!(err(b"Pabc").contains("no end of line"));
    }

    #[test]
    fn only_an_empty_ordered_dict_call_is_read_as_a_dict() {
        let od = b"ccollections\nOrderedDict\n";
        let mut empty = od.to_vec();
        empty.extend(b")RU\x01aK\x01s.");
        assert_eq!(
            load(&empty).unwrap(),
            Value::Dict(vec![(bytes(b"a"), Value::Int(1))])
        );
        // OrderedDict([]) stays a call, which SETITEM cannot fill.
        let mut with_args = od.to_vec();
        with_args.extend(b"]\x85R.");
        assert_eq!(load(&with_args).unwrap().kind(), "call");
        let mut filled = od.to_vec();
        filled.extend(b"]\x85RU\x01aK\x01s.");
        assert!(err(&filled).contains("needs a dict to add to, found a call"));
        // Any other callable stays a call too.
        assert_eq!(load(b"cbuiltins\ndict\n)R.").unwrap().kind(), "call");
    }

    #[test]
    fn torch_pickles_truncated_or_corrupted_give_errors_never_panics() {
        for input in [TORCH_WRAPPED, TORCH_PROTO4] {
            for end in 0..input.len() - 1 {
                assert!(
                    load(&input[..end]).is_err(),
                    "prefix of {end} bytes was accepted"
                );
            }
            for i in 0..input.len() {
                for b in [0x00, 0x28, 0x2e, 0x51, 0x52, 0x71, 0x94, 0xff] {
                    let mut bad = input.to_vec();
                    bad[i] = b;
                    let _ = load(&bad);
                }
            }
        }
    }

    #[test]
    fn numpy_scalars_become_numbers() {
        // np.int64(3), protocol 2 as written by Python 3.
        let input = b"\x80\x02cnumpy._core.multiarray\x0ascalar\x0aq\x00cnumpy\x0adtype\x0aq\x01X\x02\x00\x00\x00i8q\x02\x89\x88\x87q\x03Rq\x04(K\x03X\x01\x00\x00\x00<q\x05NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x06bc_codecs\x0aencode\x0aq\x07X\x08\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00q\x08X\x06\x00\x00\x00latin1q\x09\x86q\x0aRq\x0b\x86q\x0cRq\x0d.";
        assert_eq!(load(input).unwrap(), Value::Int(3));
    }
}
