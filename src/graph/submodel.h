// Sub-models carved out of a model's graph, MatFormer style: a subset of its layers, each keeping a
// prefix of its feed-forward neurons. Gemma 3n is trained so that such nested models work (E2B sits
// inside E4B); for any model they make a self-draft for speculative decoding that needs no second
// checkpoint, since the weights are the target's own.
//
// The transform works on any graph whose builder labels nodes by layer ("l<N>." name prefixes, see
// GraphBuilder::set_label) and names the feed-forward projections "gate", "up" and "down":
// - a skipped layer's outputs (the values later nodes read) must be residual sums of its inputs,
//   x_out = x_in + f(...) + g(...) as chains of Adds; skipping replaces x_out by x_in. A layer whose KV
//   cache a kept layer shares cannot be skipped;
// - a narrowed FFN keeps gate/up rows [0, m) and down columns [0, m); the nodes between them must be
//   elementwise or row-wise at any width (GaussianTopK). The narrowed tensors are new tensors (TensorSlice), which self_draft.h materializes
//   (or a converter stores in the .elm file);
// - a narrowed output layer (vocab) keeps rows [0, vocab) of the logits' product weight (a new tensor
//   even when the weight is also the embedding table, which stays whole); only elementwise ops may sit
//   between that product and the logits.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace elm {

struct SubModelSpec {
  std::vector<int64_t> layers;  // layers to keep, e.g. {0, 1, 2, 5}; empty: all
  double ffn_fraction = 1.0;    // share of every kept layer's FFN neurons to keep (a prefix)
  int64_t ffn_multiple = 32;    // kept widths are rounded to a multiple of this (quantization groups)
  // Token ids the output layer scores: [0, vocab); 0 = all. A draft's output layer over a large
  // vocabulary costs as much as a target's; BPE ids are in merge order, roughly by frequency, so a
  // prefix keeps most of the tokens text uses (SmolLM2's first 16,384 of 49,152 ids cover 93 % of
  // WikiText) at a third of the cost. Drafts outside the prefix are never proposed: only acceptance
  // changes, never the output.
  int64_t vocab = 0;

  // "layers=0-3,5;ffn=0.5;vocab=16384" (any part may be left out). Throws elm::Error on malformed text.
  static SubModelSpec parse(const std::string& text);
  std::string to_string() const;
};

// A tensor the sub-model needs that the model does not have: source[:rows, :cols] (a vector source
// [n] is one row; `rows` is then 1).
struct TensorSlice {
  std::string name, source;
  int64_t rows = 0, cols = 0;
};

struct SubModel {
  Graph graph;
  std::vector<TensorSlice> slices;
};

// weight_shapes: the model's tensor shapes (WeightStore::shapes()). Throws elm::Error naming the layer
// or node when the graph does not have the structure described above. The result is validated.
SubModel carve_submodel(const Graph& g, const std::map<std::string, std::vector<int64_t>>& weight_shapes,
                        const SubModelSpec& spec);

}  // namespace elm
