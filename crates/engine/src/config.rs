//! `strata.toml`: sources and their column mappings, features, model choice, outputs.
//! Relative paths are resolved against the directory of the config file.

use crate::pipeline::EngineError;
use serde::Deserialize;
use serde::Serialize;
use std::path::{Path, PathBuf};
use strata_core::EntityKind;
use strata_features::RFM_COLUMNS;
use strata_ml::ScalerKind;
use strata_prep::{PrepConfig, PrepPlan, SourceConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub run: RunConfig,
    pub sources: SourcesConfig,
    #[serde(default)]
    pub features: FeaturesConfig,
    #[serde(default)]
    pub segmentation: SegmentationConfig,
    /// Cleaning steps per table: normalization, validation, dedup, imputation, pseudonyms.
    #[serde(default)]
    pub prep: PrepConfig,
    /// Customer lifetime value models: settings for `strata clv` (defaults without the
    /// section); when present, `strata run` also adds mean CLV and P(alive) per segment.
    pub clv: Option<crate::clv::ClvConfig>,
    /// Propensity / churn model (`strata propensity`; joins the segment profiles of `strata
    /// run` when present).
    pub propensity: Option<crate::propensity::PropensityConfig>,
    /// `[prep]` checked against the sources, with the HMAC key loaded.
    #[serde(skip)]
    pub prep_plan: PrepPlan,
    /// Directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// SHA-256 of the config text, recorded with every run.
    #[serde(skip)]
    pub hash: String,
    /// `[run] as_of` as µs since the epoch, parsed (and checked) once at load.
    #[serde(skip)]
    pub as_of_micros: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Title of the report.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Features are computed from orders strictly before this date (`YYYY-MM-DD` or RFC 3339).
    /// Default: midnight after the last order.
    pub as_of: Option<String>,
    #[serde(default = "default_output")]
    pub output: PathBuf,
    /// Worker threads (0 = all cores).
    #[serde(default)]
    pub threads: usize,
}

fn default_name() -> String {
    "Strata segmentation".into()
}
fn default_seed() -> u64 {
    42
}
fn default_output() -> PathBuf {
    PathBuf::from("strata-out")
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            seed: default_seed(),
            as_of: None,
            output: default_output(),
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// Needed by `strata run` and `strata clv`; a propensity model on a labelled customer
    /// table needs only `customers`.
    pub orders: Option<SourceConfig>,
    pub customers: Option<SourceConfig>,
    pub events: Option<SourceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// The features the segmentation model sees.
    #[serde(default = "default_segment_on")]
    pub segment_on: Vec<String>,
    #[serde(default)]
    pub scaling: Scaling,
    /// Categorical fields of the customers table clustered with the numeric features (by
    /// `algorithm = "kprototypes"`).
    #[serde(default)]
    pub categorical: Vec<String>,
}

/// How features are scaled before clustering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// Log then z-score for heavy-tailed counts and money (frequency, monetary, aov); plain
    /// z-score for bounded durations (recency, tenure), whose log would inflate the spread
    /// among recent customers.
    #[default]
    Auto,
    ZScore,
    LogZScore,
}

impl Scaling {
    pub fn kind_for(self, feature: &str) -> ScalerKind {
        match self {
            Self::ZScore => ScalerKind::ZScore,
            Self::LogZScore => ScalerKind::LogZScore,
            Self::Auto if matches!(feature, "frequency" | "monetary" | "aov") => {
                ScalerKind::LogZScore
            }
            Self::Auto => ScalerKind::ZScore,
        }
    }
}

fn default_segment_on() -> Vec<String> {
    RFM_COLUMNS.iter().map(|s| s.to_string()).collect()
}
impl Default for FeaturesConfig {
    fn default() -> Self {
        Self {
            segment_on: default_segment_on(),
            scaling: Scaling::Auto,
            categorical: Vec::new(),
        }
    }
}

/// The clustering algorithm of `strata run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// k-means (k-means++ restarts; Lloyd iterations, Hamerly's bounds from 17 features on);
    /// k by silhouette.
    #[default]
    Kmeans,
    /// Gaussian mixture (EM); k by BIC; soft memberships.
    Gmm,
    /// Agglomerative clustering with Ward's linkage (O(n·d) memory); k by silhouette of the
    /// dendrogram's cuts.
    Ward,
    /// Agglomerative, complete linkage (all pairwise distances: at most 25,000 customers).
    Complete,
    /// Agglomerative, average linkage (at most 25,000 customers).
    Average,
    /// Agglomerative, single linkage (minimum spanning tree).
    Single,
    /// Density-based clusters with noise; `eps` from the k-distance curve unless given.
    Dbscan,
    /// Fuzzy c-means; k from the k-means selection; membership degrees.
    Fuzzy,
    /// k-prototypes on the numeric features and `[features] categorical`; k at the knee of
    /// the cost curve.
    Kprototypes,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kmeans => "kmeans",
            Self::Gmm => "gmm",
            Self::Ward => "ward",
            Self::Complete => "complete",
            Self::Average => "average",
            Self::Single => "single",
            Self::Dbscan => "dbscan",
            Self::Fuzzy => "fuzzy",
            Self::Kprototypes => "kprototypes",
        }
    }

    pub fn linkage(self) -> Option<strata_ml::Linkage> {
        use strata_ml::Linkage;
        match self {
            Self::Ward => Some(Linkage::Ward),
            Self::Complete => Some(Linkage::Complete),
            Self::Average => Some(Linkage::Average),
            Self::Single => Some(Linkage::Single),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentationConfig {
    #[serde(default)]
    pub algorithm: Algorithm,
    /// A fixed number of segments (no selection over k_min..k_max).
    pub k: Option<usize>,
    #[serde(default = "default_k_min")]
    pub k_min: usize,
    #[serde(default = "default_k_max")]
    pub k_max: usize,
    #[serde(default = "default_n_init")]
    pub n_init: usize,
    #[serde(default = "default_silhouette_sample")]
    pub silhouette_sample: usize,
    #[serde(default = "default_min_share")]
    pub min_segment_share: f64,
    /// Gaussian mixture covariance: "full" or "diagonal".
    #[serde(default = "default_covariance")]
    pub covariance: strata_ml::Covariance,
    /// Fuzzy c-means fuzzifier m > 1 (larger: softer memberships).
    #[serde(default = "default_fuzzifier")]
    pub fuzzifier: f64,
    /// DBSCAN radius in the scaled space (default: the knee of the k-distance curve).
    pub eps: Option<f64>,
    /// DBSCAN neighbours (the row itself included) that make a core row; default 2 × features.
    pub min_samples: Option<usize>,
    /// Cluster in the principal components explaining this share of the variance (0 < x ≤ 1).
    pub pca_variance: Option<f64>,
    /// Uniform reference sets for the gap statistic per k (0: not computed).
    #[serde(default)]
    pub gap_references: usize,
    /// Refits on random subsamples to measure stability (0: skipped).
    #[serde(default = "default_stability_runs")]
    pub stability_runs: usize,
    /// Share of customers in each stability subsample.
    #[serde(default = "default_stability_sample")]
    pub stability_sample: f64,
    /// Refit on features as of this many days before `as_of` and compare the two models on
    /// today's customers (time-split stability).
    pub time_split_days: Option<u32>,
    /// Split this segment (its name or id) into sub-segments.
    pub split: Option<String>,
    /// Largest number of sub-segments tried for `split`.
    #[serde(default = "default_split_k_max")]
    pub split_k_max: usize,
}

fn default_covariance() -> strata_ml::Covariance {
    strata_ml::Covariance::Full
}
fn default_fuzzifier() -> f64 {
    2.0
}
fn default_stability_runs() -> usize {
    5
}
fn default_stability_sample() -> f64 {
    0.8
}
fn default_split_k_max() -> usize {
    4
}

fn default_k_min() -> usize {
    2
}
fn default_k_max() -> usize {
    8
}
fn default_n_init() -> usize {
    10
}
fn default_silhouette_sample() -> usize {
    4000
}
fn default_min_share() -> f64 {
    0.01
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        Self {
            k_min: default_k_min(),
            k_max: default_k_max(),
            n_init: default_n_init(),
            silhouette_sample: default_silhouette_sample(),
            min_segment_share: default_min_share(),
            algorithm: Algorithm::Kmeans,
            k: None,
            covariance: default_covariance(),
            fuzzifier: default_fuzzifier(),
            eps: None,
            min_samples: None,
            pca_variance: None,
            gap_references: 0,
            stability_runs: default_stability_runs(),
            stability_sample: default_stability_sample(),
            time_split_days: None,
            split: None,
            split_k_max: default_split_k_max(),
        }
    }
}

impl Config {
    /// Reads and checks a config file. Errors name the file and, for syntax and type
    /// errors, the line.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, &base)
    }

    /// Parses config text; `origin` names it in errors, `base_dir` anchors relative paths.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Self, EngineError> {
        use sha2::Digest;
        let mut config: Config = toml::from_str(text).map_err(|e| EngineError::ConfigInvalid {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.base_dir = base_dir.to_path_buf();
        config.hash = format!("{:x}", sha2::Sha256::digest(text.as_bytes()));
        config.check(origin)?;
        config.compile_prep(text, origin)?;
        Ok(config)
    }

    fn check(&mut self, origin: &Path) -> Result<(), EngineError> {
        let invalid = |message: String| EngineError::ConfigInvalid {
            path: origin.to_path_buf(),
            message,
        };
        if self.features.segment_on.is_empty() {
            return Err(invalid(
                "[features] segment_on is empty: name at least one feature".into(),
            ));
        }
        for f in &self.features.segment_on {
            if !RFM_COLUMNS.contains(&f.as_str()) {
                return Err(invalid(format!(
                    "[features] segment_on: unknown feature `{f}`; available: {}",
                    RFM_COLUMNS.join(", ")
                )));
            }
        }
        let s = &self.segmentation;
        if s.k_min < 2 || s.k_max < s.k_min {
            return Err(invalid(format!(
                "[segmentation] needs 2 ≤ k_min ≤ k_max, got k_min = {}, k_max = {}",
                s.k_min, s.k_max
            )));
        }
        if s.n_init == 0 {
            return Err(invalid("[segmentation] n_init must be at least 1".into()));
        }
        if !(0.0..0.5).contains(&s.min_segment_share) {
            return Err(invalid(
                "[segmentation] min_segment_share must be in [0, 0.5)".into(),
            ));
        }
        if s.silhouette_sample < 100 {
            return Err(invalid(
                "[segmentation] silhouette_sample must be at least 100".into(),
            ));
        }
        if s.k == Some(0) {
            return Err(invalid(
                "[segmentation] k = 0: a segmentation needs at least 1 segment".into(),
            ));
        }
        if !(s.fuzzifier.is_finite() && s.fuzzifier > 1.0) {
            return Err(invalid(format!(
                "[segmentation] fuzzifier = {}: it must be greater than 1",
                s.fuzzifier
            )));
        }
        if let Some(eps) = s.eps
            && !(eps.is_finite() && eps > 0.0)
        {
            return Err(invalid(format!(
                "[segmentation] eps = {eps}: it must be a positive distance"
            )));
        }
        if s.min_samples == Some(0) {
            return Err(invalid(
                "[segmentation] min_samples must be at least 1".into(),
            ));
        }
        if let Some(v) = s.pca_variance
            && !(v > 0.0 && v <= 1.0)
        {
            return Err(invalid(format!(
                "[segmentation] pca_variance = {v}: it must be in (0, 1]"
            )));
        }
        if s.gap_references == 1 {
            return Err(invalid(
                "[segmentation] gap_references must be 0 (off) or at least 2".into(),
            ));
        }
        if s.stability_runs > 0 && !(s.stability_sample > 0.0 && s.stability_sample < 1.0) {
            return Err(invalid(format!(
                "[segmentation] stability_sample = {}: it must be in (0, 1)",
                s.stability_sample
            )));
        }
        if s.time_split_days == Some(0) {
            return Err(invalid(
                "[segmentation] time_split_days must be at least 1".into(),
            ));
        }
        if s.split_k_max < 2 {
            return Err(invalid(
                "[segmentation] split_k_max must be at least 2".into(),
            ));
        }
        let categorical = !self.features.categorical.is_empty();
        if categorical != (s.algorithm == Algorithm::Kprototypes) {
            return Err(invalid(if categorical {
                format!(
                    "[features] categorical is clustered only by algorithm = \"kprototypes\", not \"{}\"",
                    s.algorithm.name()
                )
            } else {
                "algorithm = \"kprototypes\" needs [features] categorical = [\"<customers field>\", …]"
                    .into()
            }));
        }
        if categorical && self.sources.customers.is_none() {
            return Err(invalid(
                "[features] categorical fields come from the customers table: add [sources.customers]"
                    .into(),
            ));
        }
        if s.algorithm == Algorithm::Dbscan && s.k.is_some() {
            return Err(invalid(
                "[segmentation] k does not apply to DBSCAN: its eps decides the clusters".into(),
            ));
        }
        if s.algorithm != Algorithm::Dbscan && (s.eps.is_some() || s.min_samples.is_some()) {
            return Err(invalid(format!(
                "[segmentation] eps and min_samples are DBSCAN settings, but algorithm = \"{}\"",
                s.algorithm.name()
            )));
        }
        if self.sources.orders.is_none() && self.sources.customers.is_none() {
            return Err(invalid(
                "[sources] names no table: add [sources.orders] (and optionally [sources.customers])"
                    .into(),
            ));
        }
        if let Some(c) = &self.clv {
            c.check().map_err(invalid)?;
        }
        if let Some(p) = &self.propensity {
            p.check(
                self.sources.customers.is_some(),
                self.sources.orders.is_some(),
            )
            .map_err(invalid)?;
        }
        if let Some(a) = &self.run.as_of {
            match strata_prep::parse_timestamp_micros(a, &[]) {
                Some(micros) => self.as_of_micros = Some(micros),
                None => {
                    return Err(invalid(format!(
                        "[run] as_of = \"{a}\" is not a date (use YYYY-MM-DD)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The sources by table name.
    pub fn sources(&self) -> Vec<(EntityKind, &SourceConfig)> {
        let mut out = Vec::new();
        if let Some(o) = &self.sources.orders {
            out.push((EntityKind::Orders, o));
        }
        if let Some(c) = &self.sources.customers {
            out.push((EntityKind::Customers, c));
        }
        if let Some(e) = &self.sources.events {
            out.push((EntityKind::Events, e));
        }
        out
    }

    /// Checks `[prep]` against the sources' fields and loads the HMAC key; nothing is read
    /// from the data files.
    fn compile_prep(&mut self, text: &str, origin: &Path) -> Result<(), EngineError> {
        let sources: strata_prep::Sources<'_> = self
            .sources()
            .into_iter()
            .map(|(k, c)| (k.table_name(), (k, c)))
            .collect();
        let plan = self
            .prep
            .compile(&sources, text, &self.base_dir)
            .map_err(|e| EngineError::ConfigInvalid {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        drop(sources);
        self.prep_plan = plan;
        Ok(())
    }

    /// A path from the config, resolved against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// The feature and model sections both written configs share, with the defaults spelled out.
const MODEL_SECTIONS: &str = r#"[features]
segment_on = ["recency_days", "frequency", "monetary", "tenure_days", "aov"]
scaling = "auto"                # log for counts and money, z-score for durations

[segmentation]
algorithm = "kmeans"            # or gmm, ward, complete, average, single, dbscan, fuzzy
k_min = 2
k_max = 8
n_init = 10                     # k-means restarts per k
silhouette_sample = 4000        # rows scored for each k's silhouette
min_segment_share = 0.01        # smaller segments rule a k out
stability_runs = 5              # refits on 80% subsamples (ARI, Jaccard per segment)
"#;

/// The config `strata quickstart` writes beside its copy of CDNOW.
pub fn quickstart_config(data_file: &str) -> String {
    format!(
        r#"# Strata quickstart: RFM segmentation of the CDNOW customers (Fader, Hardie & Lee).
# Re-run with: strata run --config <this file>. Paths are relative to this file.

[run]
name = "CDNOW customer segments"
seed = 42
output = "."

[sources.orders]
path = "{data_file}"
format = "whitespace"          # columns separated by runs of spaces
header = true

[sources.orders.columns]
customer_id = "customer_id"
timestamp = {{ column = "date", format = "%Y%m%d" }}
amount = "dollar_value"
quantity = "number_of_cds"

{MODEL_SECTIONS}"#
    )
}

/// The config `strata generate` writes beside the generated world.
pub fn generated_world_config(as_of: &str, seed: u64) -> String {
    format!(
        r#"# A generated e-commerce world (strata generate). Run with: strata run --config <this file>

[run]
name = "Generated e-commerce world"
seed = {seed}
as_of = "{as_of}"
output = "strata-out"

[sources.orders]
path = "orders.csv"

[sources.orders.columns]
order_id = "order_id"
customer_id = "customer_id"
timestamp = "order_date"
amount = "amount"
quantity = "quantity"
currency = "currency"

[sources.customers]
path = "customers.csv"

[sources.customers.columns]
customer_id = "customer_id"
email = "email"
name = "last_name"
signup_date = {{ column = "signup_date", formats = ["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"] }}
first_name = "first_name"
phone = "phone"
gender = "gender"
age = {{ column = "age", type = "int" }}
country = "country"
city = "city"

[sources.events]
path = "events.jsonl"

# --- data preparation: rules per field, deduplication, imputation -----------------------
[prep.customers.fields.email]
normalize = ["email"]            # trimmed, lower case
format = "email"
on_invalid = "null"              # an invalid email is dropped (and flagged), not the customer

[prep.customers.fields.phone]
normalize = ["phone"]            # E.164, national numbers read as US
phone_region = "US"
on_invalid = "null"

[prep.customers.fields.first_name]
normalize = ["collapse_spaces", "title"]

[prep.customers.fields.name]
normalize = ["collapse_spaces", "title"]

[prep.customers.fields.gender]
normalize = ["trim", "uppercase"]
map = {{ F = "female", M = "male" }}
allowed = ["female", "male"]
on_invalid = "null"

[prep.customers.fields.age]
range = [18, 120]
on_invalid = "null"              # "unknown" or 150 becomes missing, then imputed
impute = "median"
missing_indicator = true

[prep.customers.dedup]
exact = ["customer_id", "email"]
# Only records that share one of these keys are compared: the phone; the Soundex codes of
# both names (in either order) with the city or the signup date; or signup date, gender and age.
blocking = [
  ["phone"],
  ["first_name+name:soundex", "city"],
  ["first_name+name:soundex", "signup_date"],
  ["signup_date", "gender", "age"],
]
compare = [
  {{ fields = ["first_name", "name"], method = "jaro_winkler" }},   # either order
  {{ fields = ["phone"], method = "exact" }},
  {{ fields = ["email"], method = "exact" }},
  {{ fields = ["gender"], method = "exact" }},
  {{ fields = ["age"], method = "numeric", within = 1 }},
  {{ fields = ["signup_date"], method = "date", within = 3 }},
  {{ fields = ["city"], method = "exact" }},
]
threshold = 0.9                  # posterior match probability
survivorship = {{ default = "most_complete", signup_date = "min" }}

[prep.orders.currency]
to = "USD"
rates = {{ GBP = 1.25, EUR = 1.10, CAD = 0.75, JPY = 0.0068 }}

[[prep.orders.checks]]
rule = "timestamp >= customers.signup_date"
on_invalid = "quarantine"

{MODEL_SECTIONS}"#
    )
}
