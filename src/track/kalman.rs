//! Constant-velocity Kalman filter over `(cx, cy, a = w/h, h)` and their velocities, with the
//! noise model of ByteTrack/DeepSORT (as in Ultralytics' `KalmanFilterXYAH`): standard
//! deviations of 1/20 (position) and 1/160 (velocity) of the box height, 1e-2 / 1e-5 for the
//! aspect ratio, 1e-1 for the aspect-ratio measurement noise. All arithmetic is `f64`.

use nalgebra::{SMatrix, SVector};

pub type Mean = SVector<f64, 8>;
pub type Cov = SMatrix<f64, 8, 8>;
pub type Measurement = SVector<f64, 4>;

const STD_POS: f64 = 1.0 / 20.0;
const STD_VEL: f64 = 1.0 / 160.0;

/// A box as `(cx, cy, a, h)` where `a = w / h`.
pub fn xyah(cx: f64, cy: f64, a: f64, h: f64) -> Measurement {
    Measurement::new(cx, cy, a, h)
}

/// Initial state for an unassociated measurement: zero velocity, covariance scaled by height.
pub fn initiate(m: &Measurement) -> (Mean, Cov) {
    let mut mean = Mean::zeros();
    mean.fixed_rows_mut::<4>(0).copy_from(m);
    let h = m[3];
    let std = [
        2.0 * STD_POS * h,
        2.0 * STD_POS * h,
        1e-2,
        2.0 * STD_POS * h,
        10.0 * STD_VEL * h,
        10.0 * STD_VEL * h,
        1e-5,
        10.0 * STD_VEL * h,
    ];
    let mut cov = Cov::zeros();
    for (i, s) in std.iter().enumerate() {
        cov[(i, i)] = s * s;
    }
    (mean, cov)
}

/// Prediction step (`dt = 1` frame), in place.
pub fn predict(mean: &mut Mean, cov: &mut Cov) {
    let h = mean[3];
    let std = [STD_POS * h, STD_POS * h, 1e-2, STD_POS * h, STD_VEL * h, STD_VEL * h, 1e-5, STD_VEL * h];
    // mean = F mean
    for i in 0..4 {
        mean[i] += mean[i + 4];
    }
    // cov = F cov F^T with F = [[I, I], [0, I]]: rows then columns.
    for c in 0..8 {
        for r in 0..4 {
            cov[(r, c)] += cov[(r + 4, c)];
        }
    }
    for r in 0..8 {
        for c in 0..4 {
            cov[(r, c)] += cov[(r, c + 4)];
        }
    }
    for (i, s) in std.iter().enumerate() {
        cov[(i, i)] += s * s;
    }
}

/// Correction step with a measurement `(cx, cy, a, h)`, in place.
pub fn update(mean: &mut Mean, cov: &mut Cov, m: &Measurement) {
    let h = mean[3];
    let r = [STD_POS * h, STD_POS * h, 1e-1, STD_POS * h];
    let mut s: SMatrix<f64, 4, 4> = cov.fixed_view::<4, 4>(0, 0).into_owned();
    for (i, v) in r.iter().enumerate() {
        s[(i, i)] += v * v;
    }
    // K = P H^T S^-1 (8x4); S is symmetric positive definite.
    let pht: SMatrix<f64, 8, 4> = cov.fixed_view::<8, 4>(0, 0).into_owned();
    let s_inv = match s.cholesky() {
        Some(ch) => ch.inverse(),
        None => match s.try_inverse() {
            Some(inv) => inv,
            None => return, // degenerate; keep the prediction
        },
    };
    let k = pht * s_inv;
    let innovation = m - mean.fixed_rows::<4>(0);
    *mean += k * innovation;
    *cov -= k * s * k.transpose();
}

/// `(x1, y1, x2, y2)` of a state mean, as Ultralytics derives it (`w = a * h`).
pub fn mean_to_xyxy(mean: &Mean) -> [f64; 4] {
    let w = mean[2] * mean[3];
    let h = mean[3];
    let x1 = mean[0] - w / 2.0;
    let y1 = mean[1] - h / 2.0;
    [x1, y1, x1 + w, y1 + h]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiate_then_xyxy_round_trips() {
        let (mean, cov) = initiate(&xyah(100.0, 50.0, 0.5, 40.0));
        let b = mean_to_xyxy(&mean);
        assert_eq!(b, [90.0, 30.0, 110.0, 70.0]);
        assert!((cov[(0, 0)] - (0.1 * 40.0f64).powi(2)).abs() < 1e-12);
    }

    #[test]
    fn constant_velocity_is_learned() {
        // A box moving +5 px/frame in x: after a few updates the prediction leads the last measurement.
        let (mut mean, mut cov) = initiate(&xyah(0.0, 0.0, 0.5, 100.0));
        for t in 1..30 {
            predict(&mut mean, &mut cov);
            update(&mut mean, &mut cov, &xyah(5.0 * t as f64, 0.0, 0.5, 100.0));
        }
        assert!((mean[4] - 5.0).abs() < 0.2, "velocity {}", mean[4]);
        predict(&mut mean, &mut cov);
        assert!((mean[0] - 150.0).abs() < 1.0, "predicted x {}", mean[0]);
        // Covariance stays symmetric.
        assert!((cov - cov.transpose()).abs().max() < 1e-9);
    }

    #[test]
    fn update_matches_closed_form_scalar_case() {
        // With a diagonal initial covariance, the x-position update is a scalar Kalman update.
        let (mut mean, mut cov) = initiate(&xyah(10.0, 0.0, 1.0, 20.0));
        let p = cov[(0, 0)];
        let r = (20.0f64 / 20.0).powi(2);
        update(&mut mean, &mut cov, &xyah(12.0, 0.0, 1.0, 20.0));
        let k = p / (p + r);
        assert!((mean[0] - (10.0 + k * 2.0)).abs() < 1e-12);
        assert!((cov[(0, 0)] - (1.0 - k) * p).abs() < 1e-12);
    }
}
