//! The one error type of symseg. Every variant says *where* the problem is, so a
//! caller can fix the offending sample instead of guessing.

/// Result alias used throughout symseg.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a symseg call.
///
/// Validation errors (SPEC §1) name the sample `b` and the position `(i, j)`.
/// Configuration errors name the parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Logits and labels (or another input) have different shapes.
    #[error("shape mismatch: {what} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which input is wrong (`"labels"`, `"mask"`, `"gradient"`, ...).
        what: &'static str,
        /// The shape that input has.
        got: Vec<usize>,
        /// The shape it should have.
        expected: Vec<usize>,
    },
    /// An input is not a batch of square maps (`[B, N, N]` or `[N, N]`).
    #[error("{what} must have shape [B, N, N] or [N, N] with square maps, got {shape:?}")]
    NotSquare {
        /// Which input is wrong.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// N = 0 (or B = 0): there is nothing to compute a loss over.
    #[error("empty input: maps must have N >= 1 and the batch B >= 1, got shape {shape:?}")]
    Empty {
        /// The shape given.
        shape: Vec<usize>,
    },
    /// A label other than 0, 1 or 255.
    #[error("label {value} at sample {sample}, position ({i}, {j}) is not 0, 1 or 255 (ignore)")]
    BadLabel {
        /// Sample index.
        sample: usize,
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// The value found.
        value: u8,
    },
    /// `y[b,i,j] != y[b,j,i]` while symmetric labels are required.
    #[error("labels are not symmetric at sample {sample}: y[{i},{j}] = {upper} but y[{j},{i}] = {lower}")]
    AsymmetricLabels {
        /// Sample index.
        sample: usize,
        /// Row of the upper-triangle element (`i < j`).
        i: usize,
        /// Column of the upper-triangle element.
        j: usize,
        /// `y[b,i,j]`.
        upper: u8,
        /// `y[b,j,i]`.
        lower: u8,
    },
    /// The mask is not symmetric.
    #[error("mask is not symmetric at sample {sample}: mask[{i},{j}] = {upper} but mask[{j},{i}] = {lower}")]
    AsymmetricMask {
        /// Sample index.
        sample: usize,
        /// Row (`i < j`).
        i: usize,
        /// Column.
        j: usize,
        /// `mask[b,i,j]`.
        upper: u8,
        /// `mask[b,j,i]`.
        lower: u8,
    },
    /// A per-sample length outside `1..=N`.
    #[error("length {length} of sample {sample} is outside 1..={n}")]
    BadLength {
        /// Sample index.
        sample: usize,
        /// The length given.
        length: i64,
        /// The map size N.
        n: usize,
    },
    /// The lengths array does not have one entry per sample.
    #[error("lengths has {got} entries but the batch has {expected} samples")]
    LengthsSize {
        /// Entries given.
        got: usize,
        /// Batch size B.
        expected: usize,
    },
    /// A NaN or infinite logit inside the counted set (lowest index reported).
    #[error("non-finite logit {value} at sample {sample}, position ({i}, {j})")]
    NonFiniteLogit {
        /// Sample index.
        sample: usize,
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// The value found.
        value: f32,
    },
    /// A configuration value outside its domain (e.g. `alpha` not in `[0, 1]`).
    #[error("invalid {param} = {value}: {reason}")]
    InvalidConfig {
        /// Parameter name as in SPEC §7 (`alpha`, `gamma`, ...).
        param: &'static str,
        /// The value given, as text.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// An input is not laid out the way a backend needs (e.g. a non-contiguous output).
    #[error("{what} must be a contiguous C-order (row-major) array")]
    Layout {
        /// Which input.
        what: &'static str,
    },
    /// The backend does not implement this operation.
    #[error("{op} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The backend's name.
        backend: &'static str,
    },
    /// A backend-specific failure (device, driver, compiler), with its message.
    #[error("{backend} backend: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What the backend reported.
        message: String,
    },
}

impl Error {
    /// True for errors in how the caller configured a call (as opposed to bad data):
    /// the command line maps these to exit code 2.
    pub fn is_config_error(&self) -> bool {
        matches!(self, Error::InvalidConfig { .. })
    }
}
