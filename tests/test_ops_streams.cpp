// Gemma 3n's ops (SliceGroups, RmsRescale, GaussianTopK, StreamMix) on the CPU backend against direct
// double-precision computations written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "op_harness.h"

using namespace elm;
using namespace elm::test;

TEST(OpsStreams, SliceGroupsTakesTheSameColumnsOfEveryGroup) {
  OpHarness h;
  const int64_t T = 3, G = 4, P = 10, start = 3, len = 5;
  std::vector<float> x;
  NodeId in = h.input("x", T, G * P, x, 1);
  std::vector<float> got = h.run(h.b.slice_groups(in, P, start, len), T);
  std::vector<double> want;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t c = 0; c < len; ++c) want.push_back(x[size_t(t * G * P + g * P + start + c)]);
  expect_close(got, want, 0);
}

TEST(OpsStreams, RmsRescaleMatchesReferenceMagnitudeAndFloor) {
  OpHarness h;
  const int64_t T = 4, C = 24, Cr = 16;
  const double floor = 1e-3;
  std::vector<float> x = random_vector(size_t(T * C), 2), ref;
  for (int64_t c = 0; c < C; ++c) x[size_t(2 * C + c)] *= 1e-3f;  // row 2: mean square under the floor
  NodeId nx = h.b.embed(h.weight("x", T, C, x), h.b.token_ids());
  NodeId nr = h.input("r", T, Cr, ref, 3);
  std::vector<float> got = h.run(h.b.rms_rescale(nx, nr, floor), T);
  std::vector<double> want(size_t(T * C));
  for (int64_t t = 0; t < T; ++t) {
    double sx = 0, sr = 0;
    for (int64_t c = 0; c < C; ++c) sx += double(x[size_t(t * C + c)]) * x[size_t(t * C + c)];
    for (int64_t c = 0; c < Cr; ++c) sr += double(ref[size_t(t * Cr + c)]) * ref[size_t(t * Cr + c)];
    const double factor = std::sqrt(sr / double(Cr)) / std::sqrt(std::max(sx / double(C), floor));
    for (int64_t c = 0; c < C; ++c) want[size_t(t * C + c)] = x[size_t(t * C + c)] * factor;
  }
  expect_close(got, want, 1e-5);
  // Rows above the floor end up with exactly ref's RMS.
  double ss = 0;
  for (int64_t c = 0; c < C; ++c) ss += double(got[size_t(c)]) * got[size_t(c)];
  double sr = 0;
  for (int64_t c = 0; c < Cr; ++c) sr += double(ref[size_t(c)]) * ref[size_t(c)];
  EXPECT_NEAR(std::sqrt(ss / C), std::sqrt(sr / Cr), 1e-5);
}

TEST(OpsStreams, GaussianTopKKeepsTheUpperTailShiftedByTheCutoff) {
  OpHarness h;
  const int64_t T = 3, C = 4096;
  const double std_mult = 1.6448536;  // the 95% quantile of a standard normal
  std::vector<float> x;
  NodeId in = h.input("x", T, C, x, 4);
  std::vector<float> got = h.run(h.b.gaussian_topk(in, std_mult), T);
  std::vector<double> want(size_t(T * C));
  for (int64_t t = 0; t < T; ++t) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[size_t(t * C + c)];
    mean /= double(C);
    for (int64_t c = 0; c < C; ++c) var += (x[size_t(t * C + c)] - mean) * (x[size_t(t * C + c)] - mean);
    const double cutoff = mean + std_mult * std::sqrt(var / double(C));
    size_t kept = 0;
    for (int64_t c = 0; c < C; ++c) {
      want[size_t(t * C + c)] = std::max(0.0, x[size_t(t * C + c)] - cutoff);
      kept += got[size_t(t * C + c)] > 0;
    }
    // Normal rows: about 5% survive.
    EXPECT_NEAR(double(kept) / double(C), 0.05, 0.015) << "row " << t;
  }
  expect_close(got, want, 1e-5);
}

TEST(OpsStreams, StreamMixPerRowAndBroadcastCoefficients) {
  const int64_t T = 3, n = 4, C = 6;
  for (int64_t m : {int64_t(1), int64_t(4)}) {
    for (bool broadcast : {false, true}) {
      OpHarness h;
      std::vector<float> x, coefs;
      NodeId nx = h.input("x", T, n * C, x, 5);
      NodeId nc;
      if (broadcast) {
        coefs = random_vector(size_t(m * n), 6);
        nc = h.weight("c", 0, m * n, coefs);
      } else {
        nc = h.input("c", T, m * n, coefs, 6);
      }
      std::vector<float> got = h.run(h.b.stream_mix(nx, nc, n), T);
      std::vector<double> want(size_t(T * m * C));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < m; ++j)
          for (int64_t c = 0; c < C; ++c) {
            double acc = 0;
            for (int64_t i = 0; i < n; ++i)
              acc += double(coefs[size_t((broadcast ? 0 : t * m * n) + j * n + i)]) * x[size_t(t * n * C + i * C + c)];
            want[size_t((t * m + j) * C + c)] = acc;
          }
      expect_close(got, want, 1e-5);
    }
  }
}

TEST(OpsStreams, StreamMixFansOneStreamOut) {
  // streams = 1: every output stream is a per-row multiple of the input (AltUp's correct step).
  OpHarness h;
  const int64_t T = 2, C = 5, m = 3;
  std::vector<float> x, coefs;
  NodeId nx = h.input("x", T, C, x, 7);
  NodeId nc = h.input("c", T, m, coefs, 8);
  std::vector<float> got = h.run(h.b.stream_mix(nx, nc, 1), T);
  std::vector<double> want;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t c = 0; c < C; ++c) want.push_back(double(coefs[size_t(t * m + j)]) * x[size_t(t * C + c)]);
  expect_close(got, want, 1e-6);
}
