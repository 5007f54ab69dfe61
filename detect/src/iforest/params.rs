//! Hyperparameters, their validation and the error type.

use linfa::ParamGuard;

/// The largest accepted subsample. Trees are stored as complete binary trees of depth ceil(log2 ψ)
/// (fewer than 4ψ slots), so this bounds a forest of 100 trees to about 130 MB. The paper's ψ = 256
/// is where the detection rate levels off; far larger subsamples only cost memory and time.
pub const MAX_SAMPLE_SIZE: usize = 1 << 16;

/// Why fitting or scoring was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IsolationForestError {
    #[error("n_trees must be at least 1")]
    NoTrees,
    #[error("sample_size must be between 2 and {MAX_SAMPLE_SIZE}, got {0}")]
    SampleSize(usize),
    #[error("rows have no features")]
    NoFeatures,
    #[error("{len} values are not whole rows of {n_features} features")]
    RaggedRows { len: usize, n_features: usize },
    #[error("at least 2 rows are needed to fit, got {0}")]
    TooFewRows(usize),
    #[error("row {row}, feature {feature} is {value}: fitting needs finite values, scoring refuses NaN")]
    NonFinite { row: usize, feature: usize, value: f64 },
    #[error("{rows} rows to score but room for {out} scores")]
    OutputLength { rows: usize, out: usize },
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

/// Checked hyperparameters (see [`IsolationForestParams`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationForestValidParams {
    pub(crate) n_trees: usize,
    pub(crate) sample_size: usize,
    pub(crate) seed: u64,
}

impl IsolationForestValidParams {
    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// ψ as asked; a fit on fewer rows uses all of them.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Hyperparameters of an isolation forest, unchecked until [`ParamGuard::check`] or a fit (linfa's
/// convention: `Fit` is implemented on the checked set and, through linfa's blanket impl, on this).
///
/// Defaults are the paper's: 100 trees, ψ = 256; seed 0.
///
/// ```
/// use vigil_detect::iforest::IsolationForestParams;
/// let params = IsolationForestParams::default().n_trees(200).sample_size(512).seed(7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationForestParams(IsolationForestValidParams);

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self(IsolationForestValidParams { n_trees: 100, sample_size: 256, seed: 0 })
    }
}

impl IsolationForestParams {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn n_trees(mut self, n_trees: usize) -> Self {
        self.0.n_trees = n_trees;
        self
    }

    pub fn sample_size(mut self, sample_size: usize) -> Self {
        self.0.sample_size = sample_size;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl ParamGuard for IsolationForestParams {
    type Checked = IsolationForestValidParams;
    type Error = IsolationForestError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        if self.0.n_trees == 0 {
            return Err(IsolationForestError::NoTrees);
        }
        // ψ = 1 would give c(ψ) = 0 and every score 2^(-0/0).
        if !(2..=MAX_SAMPLE_SIZE).contains(&self.0.sample_size) {
            return Err(IsolationForestError::SampleSize(self.0.sample_size));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
