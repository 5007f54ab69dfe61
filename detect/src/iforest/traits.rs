//! linfa's `Fit` and `Predict` (through `PredictInplace`).

use linfa::dataset::DatasetBase;
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, Data, Ix2};

use super::{IsolationForest, IsolationForestError, IsolationForestValidParams};

/// Fits on the dataset's records (targets, if any, are ignored: the forest is unsupervised).
impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, IsolationForestError> for IsolationForestValidParams {
    type Object = IsolationForest;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<IsolationForest, IsolationForestError> {
        let records = &dataset.records;
        let n_features = records.ncols();
        match records.as_slice() {
            Some(rows) => self.fit_rows(rows, n_features),
            // Column-major or strided views: one row-major copy (`iter` walks in logical order).
            None => self.fit_rows(&records.iter().copied().collect::<Vec<_>>(), n_features),
        }
    }
}

/// Scores (higher = more anomalous) as `Array1<f64>`: `forest.predict(&records)` or
/// `forest.predict(&dataset)`.
///
/// `Predict` cannot return an error, so a row holding a NaN scores NaN (the slice API,
/// [`IsolationForest::score_into`], refuses it instead).
///
/// # Panics
/// As linfa's own models do, when the records do not have the fitted number of features or the
/// targets are not one per row.
impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for IsolationForest {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        assert_eq!(x.ncols(), self.n_features, "records have {} features, the forest {}", x.ncols(), self.n_features);
        assert_eq!(x.nrows(), y.len(), "{} records but {} targets", x.nrows(), y.len());
        let owned;
        let rows = match x.as_slice() {
            Some(rows) => rows,
            None => {
                owned = x.iter().copied().collect::<Vec<_>>();
                &owned
            }
        };
        match y.as_slice_mut() {
            Some(out) => self.score_unchecked(rows, out),
            None => {
                let mut out = vec![0.0; x.nrows()];
                self.score_unchecked(rows, &mut out);
                y.iter_mut().zip(out).for_each(|(y, s)| *y = s);
            }
        }
        for (row, y) in rows.chunks_exact(self.n_features).zip(y.iter_mut()) {
            if row.iter().any(|v| v.is_nan()) {
                *y = f64::NAN;
            }
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}
