// erf(x) to about 2e-7 absolute (Abramowitz & Stegun 7.1.26 has 1.5e-7; float rounding adds a little).
// GLSL has no erf; exact-erf GELU needs it.
float erf_approx(float x) {
  const float a = abs(x);
  const float t = 1.0 / (1.0 + 0.3275911 * a);
  const float y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
                            t * exp(-a * a);
  return x < 0.0 ? -y : y;
}
