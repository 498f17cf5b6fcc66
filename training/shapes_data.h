// Procedural training clips for the shipped demo model (models/shapes_t2v): a coloured
// shape moving in a straight line across a smooth background, with the prompt that
// describes it ("red circle moving right"). Deterministic for a given generator state.
// No torch here: the training program turns clips into tensors.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace reelfarm::training {

struct ShapeClip {
  int frames = 0, height = 0, width = 0;
  std::vector<float> rgb;  // [frames][height][width][3], values in [0, 1]
  std::string prompt;      // "<colour> <shape> moving <direction>"
  std::string colour, shape, direction;
};

const std::vector<std::string>& ShapeColours();     // red green blue yellow
const std::vector<std::string>& ShapeKinds();       // circle square triangle
const std::vector<std::string>& ShapeDirections();  // right left up down

// The words of every prompt RenderShapeClip can make, after "<pad>" and "<unk>": the
// vocabulary file of the shipped model, one token a line, index = line number.
std::vector<std::string> ShapeVocabulary();

// One clip of `frames` frames of `size`x`size` pixels. The shape travels 45-60% of the
// frame along its direction, starting 15-30% in from the edge it leaves.
ShapeClip RenderShapeClip(std::mt19937_64& rng, int frames, int size);

}  // namespace reelfarm::training
