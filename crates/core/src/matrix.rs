//! The only input models see: profile ids plus named f64 feature columns, stored row-major
//! in one contiguous buffer so distance kernels stream through memory.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MatrixError {
    #[error("feature matrix has {ids} ids but {rows} rows of data")]
    RowCount { ids: usize, rows: usize },
    #[error("data length {len} is not a multiple of {cols} columns")]
    Shape { len: usize, cols: usize },
    #[error("feature `{name}` has a non-finite value for `{id}`")]
    NonFinite { name: String, id: String },
    #[error("the feature matrix has no rows")]
    Empty,
    #[error(
        "feature `{name}` is constant (every row is {value}): it cannot separate segments; drop it from the features"
    )]
    Constant { name: String, value: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMatrix {
    ids: Vec<String>,
    names: Vec<String>,
    data: Vec<f64>,
}

impl FeatureMatrix {
    /// Builds a matrix from row-major data; every value must be finite.
    pub fn new(ids: Vec<String>, names: Vec<String>, data: Vec<f64>) -> Result<Self, MatrixError> {
        let cols = names.len();
        if cols == 0 || !data.len().is_multiple_of(cols) {
            return Err(MatrixError::Shape {
                len: data.len(),
                cols,
            });
        }
        let rows = data.len() / cols;
        if rows != ids.len() {
            return Err(MatrixError::RowCount {
                ids: ids.len(),
                rows,
            });
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(MatrixError::NonFinite {
                name: names[pos % cols].clone(),
                id: ids[pos / cols].clone(),
            });
        }
        Ok(Self { ids, names, data })
    }

    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    pub fn n_cols(&self) -> usize {
        self.names.len()
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Row-major values, `n_rows * n_cols` long.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.n_cols();
        &self.data[i * d..(i + 1) * d]
    }

    pub fn column(&self, j: usize) -> impl Iterator<Item = f64> + '_ {
        self.data.iter().skip(j).step_by(self.n_cols()).copied()
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Columns whose values are all equal, in order (none with fewer than two rows). Each
    /// column stops at its first differing value, so varying data cost O(d) here.
    pub fn constant_columns(&self) -> impl Iterator<Item = usize> + '_ {
        let d = if self.n_rows() < 2 { 0 } else { self.n_cols() };
        (0..d).filter(move |&j| {
            let v = self.data[j];
            self.column(j).all(|x| x == v)
        })
    }

    /// The first constant column, with its value.
    pub fn constant_column(&self) -> Option<(usize, f64)> {
        self.constant_columns().next().map(|j| (j, self.data[j]))
    }

    /// An error naming the first constant column, if there is one. Clustering refuses such
    /// data: a constant feature carries no information and usually means a wrong mapping.
    pub fn check_varying(&self) -> Result<(), MatrixError> {
        match self.constant_column() {
            Some((j, value)) => Err(MatrixError::Constant {
                name: self.names[j].clone(),
                value,
            }),
            None => Ok(()),
        }
    }

    /// Same ids and names, new values (used by transforms).
    pub fn with_data(&self, data: Vec<f64>) -> Result<Self, MatrixError> {
        Self::new(self.ids.clone(), self.names.clone(), data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_constant_column() {
        let ids: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let names = vec!["x".to_string(), "y".to_string()];
        let m = FeatureMatrix::new(
            ids.clone(),
            names.clone(),
            vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0],
        )
        .unwrap();
        assert_eq!(m.constant_column(), Some((1, 5.0)));
        let e = m.check_varying().unwrap_err().to_string();
        assert!(e.contains("`y` is constant") && e.contains('5'), "{e}");
        let m = FeatureMatrix::new(ids, names, vec![1.0, 5.0, 2.0, 5.0, 3.0, 6.0]).unwrap();
        assert_eq!(m.constant_column(), None);
        assert!(m.check_varying().is_ok());
    }

    #[test]
    fn rejects_bad_shapes_and_non_finite_values() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let names = vec!["x".to_string(), "y".to_string()];
        assert!(FeatureMatrix::new(ids.clone(), names.clone(), vec![1.0; 3]).is_err());
        assert!(FeatureMatrix::new(ids.clone(), names.clone(), vec![1.0; 6]).is_err());
        let err = FeatureMatrix::new(ids.clone(), names.clone(), vec![1.0, 2.0, f64::NAN, 4.0])
            .unwrap_err();
        assert_eq!(
            err,
            MatrixError::NonFinite {
                name: "x".into(),
                id: "b".into()
            }
        );
        let m = FeatureMatrix::new(ids, names, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m.row(1), &[3.0, 4.0]);
        assert_eq!(m.column(1).collect::<Vec<_>>(), vec![2.0, 4.0]);
    }
}
