//! Reading NumPy `.npy` inputs with the dtypes SPEC §7 accepts (also as an
//! array of an `.npz` archive: `FILE.npz:NAME`, or `FILE.npz` alone when the
//! archive holds one array or one named for its role), and writing results.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::error::{CliError, CliResult};

/// One `.npy` file read into memory, so that several dtypes can be tried.
struct NpyBytes {
    what: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl NpyBytes {
    fn open(what: &'static str, path: &Path) -> CliResult<Self> {
        let (file, key) = split_npz_key(path);
        let bytes =
            std::fs::read(&file).map_err(|source| CliError::Read { what, path: file.clone(), source })?;
        if !bytes.starts_with(ZIP_MAGIC) {
            if let Some(key) = key {
                let message = format!("is not an .npz archive, so it has no array '{key}'");
                return Err(CliError::Data { what, path: file, message });
            }
            return Ok(NpyBytes { what, path: file, bytes });
        }
        let (name, bytes) = npz_entry(what, &file, key.as_deref(), &bytes)?;
        Ok(NpyBytes { what, path: PathBuf::from(format!("{}:{name}", file.display())), bytes })
    }

    fn data_error(&self, message: impl Into<String>) -> CliError {
        CliError::Data { what: self.what, path: self.path.clone(), message: message.into() }
    }

    /// `Some(array)` if the file holds `T`, `None` if it holds another dtype.
    fn try_read<T: ndarray_npy::ReadableElement>(&self) -> CliResult<Option<ArrayD<T>>> {
        match ArrayD::<T>::read_npy(Cursor::new(&self.bytes)) {
            Ok(a) => Ok(Some(a)),
            Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
            Err(e) => Err(self.data_error(format!("not a valid .npy file ({e})"))),
        }
    }

    /// The dtype descriptor from the header, for error messages.
    fn descr(&self) -> String {
        let header = String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(512)]);
        header
            .split("'descr':")
            .nth(1)
            .and_then(|rest| rest.split('\'').nth(1))
            .map_or_else(|| "unknown".to_string(), str::to_string)
    }

    fn wrong_dtype(&self, expected: &str) -> CliError {
        self.data_error(format!("dtype '{}' is not accepted; expected {expected}", self.descr()))
    }
}

/// The local-file signature that starts every zip archive, hence every `.npz`.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Array names that stand for a role when an `.npz` holds several arrays: the
/// role's own name, then the `x`/`y` of `symseg train`'s `.npz` samples.
fn role_names(what: &str) -> &'static [&'static str] {
    match what {
        "logits" => &["logits", "x"],
        "labels" => &["labels", "y"],
        "mask" => &["mask"],
        "lengths" => &["lengths"],
        _ => &[],
    }
}

/// `FILE.npz:NAME` as the file and the array's name, when `path` itself is not
/// a file but the part before its last `:` is.
fn split_npz_key(path: &Path) -> (PathBuf, Option<String>) {
    if !path.exists()
        && let Some((file, key)) = path.to_str().and_then(|s| s.rsplit_once(':'))
        && !key.is_empty()
        && Path::new(file).is_file()
    {
        return (PathBuf::from(file), Some(key.to_string()));
    }
    (path.to_path_buf(), None)
}

/// The name and the `.npy` bytes of the array of an `.npz` archive that `key`
/// names, or else the only one, or else the one named for the role `what`.
fn npz_entry(
    what: &'static str,
    file: &Path,
    key: Option<&str>,
    bytes: &[u8],
) -> CliResult<(String, Vec<u8>)> {
    let err = |message: String| CliError::Data { what, path: file.to_path_buf(), message };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| err(format!("not a valid .npz archive ({e})")))?;
    // np.savez stores array `a` as entry `a.npy`.
    let entries: Vec<String> = zip.file_names().map(str::to_string).collect();
    let array_name = |entry: &str| entry.strip_suffix(".npy").unwrap_or(entry).to_string();
    let listing = || entries.iter().map(|e| array_name(e)).collect::<Vec<_>>().join(", ");
    let chosen = match key {
        Some(k) => entries.iter().find(|e| array_name(e) == k),
        None if entries.len() == 1 => entries.first(),
        None => role_names(what).iter().find_map(|r| entries.iter().find(|e| array_name(e) == *r)),
    };
    let Some(entry) = chosen.cloned() else {
        return Err(err(match key {
            Some(k) => format!("has no array '{k}' (it holds: {})", listing()),
            None => {
                format!("holds {} arrays ({}); name one as {}:NAME", entries.len(), listing(), file.display())
            }
        }));
    };
    let mut out = Vec::new();
    zip.by_name(&entry)
        .map_err(|e| err(format!("cannot read array '{}' ({e})", array_name(&entry))))?
        .read_to_end(&mut out)
        .map_err(|e| err(format!("cannot read array '{}' ({e})", array_name(&entry))))?;
    Ok((array_name(&entry), out))
}

/// An array in C order with its shape.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order.
    pub data: Vec<T>,
}

fn c_order<A: Clone, T>(a: ArrayD<A>, f: impl FnMut(&A) -> T) -> Loaded<T> {
    Loaded { shape: a.shape().to_vec(), data: a.iter().map(f).collect() }
}

/// Converts each element, naming the first bad one by its index.
fn convert<A: Clone + std::fmt::Display, T>(
    file: &NpyBytes,
    a: ArrayD<A>,
    mut f: impl FnMut(&A) -> Option<T>,
    expected: &str,
) -> CliResult<Loaded<T>> {
    let shape = a.shape().to_vec();
    let mut data = Vec::with_capacity(a.len());
    for (k, v) in a.iter().enumerate() {
        match f(v) {
            Some(t) => data.push(t),
            None => {
                let pos = unravel(k, &shape);
                return Err(file.data_error(format!("value {v} at {pos:?} is not {expected}")));
            }
        }
    }
    Ok(Loaded { shape, data })
}

fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut pos = vec![0; shape.len()];
    for (p, &s) in pos.iter_mut().zip(shape).rev() {
        *p = k % s.max(1);
        k /= s.max(1);
    }
    pos
}

/// Reads logits: float32, or float64 narrowed to float32.
pub fn read_logits(path: &Path) -> CliResult<Loaded<f32>> {
    let f = NpyBytes::open("logits", path)?;
    if let Some(a) = f.try_read::<f32>()? {
        return Ok(c_order(a, |&v| v));
    }
    if let Some(a) = f.try_read::<f64>()? {
        return Ok(c_order(a, |&v| v as f32));
    }
    Err(f.wrong_dtype("float32 or float64"))
}

/// Tries each integer dtype in turn, converting elements with `$conv`.
macro_rules! read_ints {
    ($f:expr, $conv:expr, $expected:expr, [$($t:ty),+]) => {
        $(
            if let Some(a) = $f.try_read::<$t>()? {
                return convert(&$f, a, |&v| $conv(v as i128), $expected);
            }
        )+
    };
}

fn label_value(v: i128) -> Option<u8> {
    matches!(v, 0 | 1 | 255).then_some(v as u8)
}

fn float_label(v: f64) -> Option<u8> {
    if v == 0.0 || v == 1.0 || v == 255.0 { Some(v as u8) } else { None }
}

/// Reads labels: u8, bool, any integer, or a float holding only 0, 1 and 255.
pub fn read_labels(path: &Path) -> CliResult<Loaded<u8>> {
    let f = NpyBytes::open("labels", path)?;
    const EXPECTED: &str = "0, 1 or 255";
    if let Some(a) = f.try_read::<bool>()? {
        return Ok(c_order(a, |&v| u8::from(v)));
    }
    read_ints!(f, label_value, EXPECTED, [u8, i8, i16, i32, i64, u16, u32, u64]);
    if let Some(a) = f.try_read::<f32>()? {
        return convert(&f, a, |&v| float_label(f64::from(v)), EXPECTED);
    }
    if let Some(a) = f.try_read::<f64>()? {
        return convert(&f, a, |&v| float_label(v), EXPECTED);
    }
    Err(f.wrong_dtype("uint8, bool, an integer type, float32 or float64"))
}

/// Reads a mask: bool or any integer (non-zero includes a pair), or a float holding only 0 and 1.
pub fn read_mask(path: &Path) -> CliResult<Loaded<u8>> {
    let f = NpyBytes::open("mask", path)?;
    if let Some(a) = f.try_read::<bool>()? {
        return Ok(c_order(a, |&v| u8::from(v)));
    }
    read_ints!(f, |v: i128| Some(u8::from(v != 0)), "an integer", [u8, i8, i16, i32, i64, u16, u32, u64]);
    let unit = |v: f64| (v == 0.0 || v == 1.0).then_some(v as u8);
    if let Some(a) = f.try_read::<f32>()? {
        return convert(&f, a, |&v| unit(f64::from(v)), "0 or 1");
    }
    if let Some(a) = f.try_read::<f64>()? {
        return convert(&f, a, |&v| unit(v), "0 or 1");
    }
    Err(f.wrong_dtype("bool, an integer type, float32 or float64"))
}

/// Reads lengths: a 1-D (or 0-D) array of any integer type.
pub fn read_lengths(path: &Path) -> CliResult<Vec<i64>> {
    let f = NpyBytes::open("lengths", path)?;
    let loaded: Loaded<i64> = (|| {
        read_ints!(
            f,
            |v: i128| i64::try_from(v).ok(),
            "a 64-bit integer",
            [i64, i32, i16, i8, u8, u16, u32, u64]
        );
        Err(f.wrong_dtype("an integer type"))
    })()?;
    if loaded.shape.len() > 1 {
        return Err(
            f.data_error(format!("must be 1-D with one length per sample, got shape {:?}", loaded.shape))
        );
    }
    Ok(loaded.data)
}

/// Writes `data` with `shape` as a float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: Vec<f32>) -> CliResult<()> {
    let err = |message: String| CliError::Write { path: path.to_path_buf(), message };
    let a = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| err(e.to_string()))?;
    write_array(path, &a)
}

/// Writes any array as `.npy`.
pub fn write_array<A: ndarray_npy::WritableElement>(path: &Path, a: &ArrayD<A>) -> CliResult<()> {
    let err = |message: String| CliError::Write { path: path.to_path_buf(), message };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    a.write_npy(std::io::BufWriter::new(file)).map_err(|e| err(e.to_string()))
}
