//! Data sets: RNA structures (dot-bracket FASTA, `.bpseq`, `.ct`), generic
//! `.npz` directories, built-in synthetic data, and the embedded PDB-derived RNA set.

pub mod rna;
mod synthetic;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};

use crate::error::{TrainError, TrainResult};
pub use synthetic::synthetic_rna;

/// The embedded training set (`data/rna/train.dbn`, PDB-derived, Apache-2.0; see
/// `data/rna/README.md` and `NOTICE` in this crate).
pub const EMBEDDED_TRAIN: &str = include_str!("../../data/rna/train.dbn");
/// The embedded validation set (`data/rna/test.dbn`).
pub const EMBEDDED_TEST: &str = include_str!("../../data/rna/test.dbn");

/// A sample's input features: stored, or computed from its RNA sequence when used.
#[derive(Debug, Clone)]
pub enum Features {
    /// `C x N x N` features as loaded (generic `.npz` data).
    Stored(Array3<f32>),
    /// [`rna::rna_features`] of the sample's sequence, computed on each use:
    /// stored, they take 68 bytes per pair (17 f32 channels), most of an RNA
    /// data set's memory (a few thousand structures of 500 nt would not fit),
    /// while computing them costs a small part of one forward pass.
    Rna,
}

/// One training example: `C x N x N` features and `N x N` labels.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Record id (or file stem).
    pub id: String,
    /// Input features (see [`Sample::features`]).
    pub features: Features,
    /// Labels in {0, 1, 255}.
    pub labels: Array2<u8>,
    /// The RNA sequence, for RNA data (the features of [`Features::Rna`], canonical-pair
    /// decoding and dot-bracket output).
    pub sequence: Option<String>,
}

impl Sample {
    /// `N`.
    pub fn len(&self) -> usize {
        self.labels.nrows()
    }

    /// True for `N = 0` (never produced by the loaders).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `C x N x N` input features: borrowed when stored, computed for RNA.
    pub fn features(&self) -> Cow<'_, Array3<f32>> {
        match &self.features {
            Features::Stored(x) => Cow::Borrowed(x),
            Features::Rna => Cow::Owned(rna::rna_features(self.sequence.as_deref().unwrap_or_default())),
        }
    }

    /// Input channels `C`.
    pub fn channels(&self) -> usize {
        match &self.features {
            Features::Stored(x) => x.shape()[0],
            Features::Rna => rna::RNA_CHANNELS,
        }
    }

    /// An RNA sample from a record.
    pub fn from_rna(rec: &rna::RnaRecord) -> Sample {
        Sample {
            id: rec.id.clone(),
            features: Features::Rna,
            labels: rna::pair_labels(rec),
            sequence: Some(rec.sequence.clone()),
        }
    }
}

/// What kind of samples a data set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// RNA structures featurised as pair features.
    Rna,
    /// Generic `C x N x N` inputs.
    Generic,
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it came from (for messages).
    pub source: String,
    /// The samples.
    pub samples: Vec<Sample>,
    /// Input channels `C`.
    pub channels: usize,
    /// RNA or generic.
    pub kind: DataKind,
    /// Messages of records skipped under `--skip-bad` (file, line, problem).
    pub skipped: Vec<String>,
}

impl Dataset {
    fn from_rna(source: String, records: &[rna::RnaRecord], skipped: Vec<String>) -> TrainResult<Dataset> {
        if records.is_empty() {
            return Err(TrainError::Dataset { path: source.into(), message: "no records".into() });
        }
        Ok(Dataset {
            source,
            samples: records.iter().map(Sample::from_rna).collect(),
            channels: rna::RNA_CHANNELS,
            kind: DataKind::Rna,
            skipped,
        })
    }

    /// A data set of RNA records (e.g. from [`synthetic_rna`]).
    ///
    /// # Errors
    /// [`TrainError::Dataset`] when `records` is empty.
    pub fn from_records(source: &str, records: &[rna::RnaRecord]) -> TrainResult<Dataset> {
        Dataset::from_rna(source.to_string(), records, Vec::new())
    }

    /// Leaves out the samples longer than `max_len` and returns their number and
    /// the longest length among them (training time and memory grow with `N²`;
    /// RNA pipelines commonly keep structures up to a few hundred nucleotides).
    ///
    /// # Errors
    /// [`TrainError::Dataset`] when no sample is left.
    pub fn retain_max_len(&mut self, max_len: usize) -> TrainResult<(usize, usize)> {
        let before = self.samples.len();
        let longest = self.samples.iter().map(Sample::len).filter(|&n| n > max_len).max().unwrap_or(0);
        self.samples.retain(|s| s.len() <= max_len);
        if self.samples.is_empty() {
            return Err(TrainError::Dataset {
                path: self.source.clone().into(),
                message: format!("no sample is at most {max_len} long"),
            });
        }
        Ok((before - self.samples.len(), longest))
    }

    /// The embedded training (`test = false`) or validation set.
    pub fn embedded(test: bool) -> TrainResult<Dataset> {
        let (name, text) = if test { ("test.dbn", EMBEDDED_TEST) } else { ("train.dbn", EMBEDDED_TRAIN) };
        let parsed = rna::parse_dbn(text, Path::new(name), false)?;
        Dataset::from_rna(format!("embedded {name}"), &parsed.records, Vec::new())
    }

    /// Loads `spec`: `synthetic[:COUNT[:SEED]]`, an RNA structure file
    /// (dot-bracket FASTA `.dbn`/`.fa`/`.fasta`/…, `.bpseq`, or `.ct` with one or
    /// more structures), a directory of such files (any mix, read in name
    /// order), or a directory of `.npz` files (arrays `x`, `C x N x N` float32,
    /// and `y`, `N x N` labels).
    ///
    /// # Errors
    /// [`TrainError`] naming the file and line of the first bad record, unless
    /// `skip_bad`, which skips bad records and lists them in [`Dataset::skipped`].
    pub fn load(spec: &str, skip_bad: bool) -> TrainResult<Dataset> {
        Dataset::load_inner(spec, skip_bad, true)
    }

    /// As [`Dataset::load`], but FASTA records may hold a sequence without a
    /// structure (inputs for prediction; their labels are all 0).
    ///
    /// # Errors
    /// As [`Dataset::load`].
    pub fn load_for_prediction(spec: &str, skip_bad: bool) -> TrainResult<Dataset> {
        Dataset::load_inner(spec, skip_bad, false)
    }

    fn load_inner(spec: &str, skip_bad: bool, require_structure: bool) -> TrainResult<Dataset> {
        if let Some(rest) = spec.strip_prefix("synthetic") {
            let mut parts = rest.trim_start_matches(':').split(':').filter(|s| !s.is_empty());
            let count = parse_num(parts.next(), 64, "synthetic count")?;
            let seed = parse_num(parts.next(), 0, "synthetic seed")? as u64;
            return Dataset::from_rna(
                format!("synthetic:{count}:{seed}"),
                &synthetic_rna(count, seed, 24, 96),
                Vec::new(),
            );
        }
        let path = PathBuf::from(spec);
        if path.is_dir() {
            return load_dir(&path, skip_bad, require_structure);
        }
        let parsed = parse_rna_file(&path, skip_bad, require_structure)?;
        Dataset::from_rna(
            spec.to_string(),
            &parsed.records,
            parsed.skipped.iter().map(|e| e.to_string()).collect(),
        )
    }
}

fn parse_num(s: Option<&str>, default: usize, what: &'static str) -> TrainResult<usize> {
    match s {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| TrainError::Config {
            param: what,
            value: v.to_string(),
            reason: "expected an integer",
        }),
    }
}

fn extension(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

fn read_text(path: &Path) -> TrainResult<String> {
    std::fs::read_to_string(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })
}

/// Extensions of the RNA structure files a directory may hold (any mix of them).
const RNA_EXTENSIONS: [&str; 8] = ["bpseq", "ct", "dbn", "db", "dot", "fa", "fasta", "fas"];

/// The records of one RNA structure file, by its extension: `.bpseq`, `.ct`,
/// else (dot-bracket) FASTA.
fn parse_rna_file(path: &Path, skip_bad: bool, require_structure: bool) -> TrainResult<rna::Parsed> {
    let text = read_text(path)?;
    Ok(match extension(path).as_str() {
        "bpseq" => rna::Parsed { records: vec![rna::parse_bpseq(&text, path)?], skipped: Vec::new() },
        "ct" => rna::Parsed { records: rna::parse_ct(&text, path)?, skipped: Vec::new() },
        _ => rna::parse_records(&text, path, skip_bad, require_structure)?,
    })
}

fn load_dir(dir: &Path, skip_bad: bool, require_structure: bool) -> TrainResult<Dataset> {
    let io = |source| TrainError::Io { path: dir.to_path_buf(), source };
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let structures: Vec<&PathBuf> =
        files.iter().filter(|p| RNA_EXTENSIONS.contains(&extension(p).as_str())).collect();
    let npz: Vec<&PathBuf> = files.iter().filter(|p| extension(p) == "npz").collect();
    let source = dir.display().to_string();
    match (structures.is_empty(), npz.is_empty()) {
        (false, true) => {
            let (mut records, mut skipped) = (Vec::new(), Vec::new());
            for p in structures {
                match parse_rna_file(p, skip_bad, require_structure) {
                    Ok(parsed) => {
                        records.extend(parsed.records);
                        skipped.extend(parsed.skipped.iter().map(|e| e.to_string()));
                    }
                    Err(e) if skip_bad => skipped.push(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            Dataset::from_rna(source, &records, skipped)
        }
        (true, false) => {
            let (mut samples, mut skipped) = (Vec::new(), Vec::new());
            for p in npz {
                match read_npz(p) {
                    Ok(s) => samples.push(s),
                    Err(e) if skip_bad => skipped.push(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            let Some(channels) = samples.first().map(Sample::channels) else {
                return Err(TrainError::Dataset {
                    path: dir.to_path_buf(),
                    message: "no readable .npz files".into(),
                });
            };
            if let Some(s) = samples.iter().find(|s| s.channels() != channels) {
                return Err(TrainError::Dataset {
                    path: dir.to_path_buf(),
                    message: format!("{} has {} channels, the first file {channels}", s.id, s.channels()),
                });
            }
            Ok(Dataset { source, samples, channels, kind: DataKind::Generic, skipped })
        }
        (false, false) => Err(TrainError::Dataset {
            path: dir.to_path_buf(),
            message: "mixes RNA structure files and .npz files".into(),
        }),
        (true, true) => Err(TrainError::Dataset {
            path: dir.to_path_buf(),
            message: format!(
                "holds no RNA structure files (.{}) and no .npz files",
                RNA_EXTENSIONS.join(", .")
            ),
        }),
    }
}

/// The `y` array of an `.npz` sample as `u8`, from bool or any integer type.
fn npz_labels(npz: &mut ndarray_npy::NpzReader<std::fs::File>) -> Result<Array2<u8>, String> {
    let label = |v: i128| u8::try_from(v).ok().filter(|u| matches!(u, 0 | 1 | 255));
    macro_rules! try_as {
        ($($t:ty),+) => {
            $(
                if let Ok(y) = npz.by_name::<ndarray::OwnedRepr<$t>, ndarray::Ix2>("y") {
                    if let Some(v) = y.iter().find(|&&v| label(v as i128).is_none()) {
                        return Err(format!("label {v} is not 0, 1 or 255"));
                    }
                    return Ok(y.mapv(|v| label(v as i128).unwrap_or(0)));
                }
            )+
        };
    }
    if let Ok(y) = npz.by_name::<ndarray::OwnedRepr<bool>, ndarray::Ix2>("y") {
        return Ok(y.mapv(u8::from));
    }
    try_as!(u8, i8, i16, i32, i64, u16, u32, u64);
    // None matched: report the error of the expected dtype.
    npz.by_name::<ndarray::OwnedRepr<u8>, ndarray::Ix2>("y").map_err(|e| e.to_string())
}

/// Reads one generic sample: arrays `x` (`C x N x N` float32) and `y` (`N x N`, 0/1/255).
fn read_npz(path: &Path) -> TrainResult<Sample> {
    let bad = |message: String| TrainError::Parse { path: path.to_path_buf(), line: 0, message };
    let file =
        std::fs::File::open(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let mut npz =
        ndarray_npy::NpzReader::new(file).map_err(|e| bad(format!("not a valid .npz file ({e})")))?;
    let x: Array3<f32> = match npz.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix3>("x") {
        Ok(x) => x,
        // float64 features narrowed, as `symseg loss` does with logits.
        Err(_) => npz
            .by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix3>("x")
            .map_err(|e| bad(format!("array 'x' (C x N x N float32 or float64): {e}")))?
            .mapv(|v| v as f32),
    };
    let y = npz_labels(&mut npz)
        .map_err(|e| bad(format!("array 'y' (N x N labels, bool or any integer type): {e}")))?;
    let n = y.nrows();
    if y.ncols() != n || x.shape()[1] != n || x.shape()[2] != n || n == 0 {
        return Err(bad(format!(
            "x has shape {:?} and y {:?}: expected C x N x N and N x N",
            x.shape(),
            y.shape()
        )));
    }
    let id = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().to_string());
    Ok(Sample { id, features: Features::Stored(x), labels: y, sequence: None })
}
