#include "training/shapes_data.h"

#include <algorithm>
#include <cmath>

namespace reelfarm::training {
namespace {

struct Rgb {
  float r, g, b;
};

Rgb ColourOf(const std::string& name) {
  if (name == "red") return {0.90f, 0.12f, 0.10f};
  if (name == "green") return {0.15f, 0.80f, 0.20f};
  if (name == "blue") return {0.12f, 0.25f, 0.95f};
  return {0.95f, 0.85f, 0.12f};  // yellow
}

// Signed distance in pixels from (dx, dy) (y down) to the shape's edge, negative inside.
float ShapeDistance(const std::string& shape, float dx, float dy, float r) {
  if (shape == "circle") return std::sqrt(dx * dx + dy * dy) - r;
  if (shape == "square") return std::max(std::fabs(dx), std::fabs(dy)) - 0.88f * r;
  // Equilateral triangle, apex up, circumradius ~1.2 r.
  const float qy = -dy;
  const float k = std::sqrt(3.0f) / 2.0f;
  return std::max(std::fabs(dx) * k + qy * 0.5f, -qy) - 0.6f * r;
}

}  // namespace

const std::vector<std::string>& ShapeColours() {
  static const std::vector<std::string> v = {"red", "green", "blue", "yellow"};
  return v;
}
const std::vector<std::string>& ShapeKinds() {
  static const std::vector<std::string> v = {"circle", "square", "triangle"};
  return v;
}
const std::vector<std::string>& ShapeDirections() {
  static const std::vector<std::string> v = {"right", "left", "up", "down"};
  return v;
}

std::vector<std::string> ShapeVocabulary() {
  std::vector<std::string> v = {"<pad>", "<unk>"};
  for (const auto* list : {&ShapeColours(), &ShapeKinds()})
    v.insert(v.end(), list->begin(), list->end());
  v.push_back("moving");
  v.insert(v.end(), ShapeDirections().begin(), ShapeDirections().end());
  return v;
}

ShapeClip RenderShapeClip(std::mt19937_64& rng, int frames, int size) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  auto pick = [&](const std::vector<std::string>& v) {
    return v[std::min(v.size() - 1, static_cast<size_t>(u(rng) * v.size()))];
  };
  ShapeClip clip;
  clip.frames = frames;
  clip.height = clip.width = size;
  clip.colour = pick(ShapeColours());
  clip.shape = pick(ShapeKinds());
  clip.direction = pick(ShapeDirections());
  clip.prompt = clip.colour + " " + clip.shape + " moving " + clip.direction;

  // Background: a low-saturation grey with a gentle linear gradient.
  const float grey = 0.15f + 0.4f * u(rng);
  const float tint[3] = {0.08f * (u(rng) - 0.5f), 0.08f * (u(rng) - 0.5f), 0.08f * (u(rng) - 0.5f)};
  const float angle = 6.2831853f * u(rng);
  const float grad = 0.16f * (u(rng) - 0.5f);
  Rgb fg = ColourOf(clip.colour);
  fg.r = std::clamp(fg.r + 0.1f * (u(rng) - 0.5f), 0.0f, 1.0f);
  fg.g = std::clamp(fg.g + 0.1f * (u(rng) - 0.5f), 0.0f, 1.0f);
  fg.b = std::clamp(fg.b + 0.1f * (u(rng) - 0.5f), 0.0f, 1.0f);
  const float radius = size * (0.13f + 0.05f * u(rng));

  // Travel along the direction's axis; the other coordinate stays put.
  const float start = 0.15f + 0.15f * u(rng);
  const float travel = 0.45f + 0.15f * u(rng);
  const float across = 0.25f + 0.5f * u(rng);
  const bool horizontal = clip.direction == "right" || clip.direction == "left";
  // Screen coordinates: x grows to the right, y grows downwards.
  const bool reverse = clip.direction == "left" || clip.direction == "up";

  clip.rgb.resize(static_cast<size_t>(frames) * size * size * 3);
  for (int f = 0; f < frames; ++f) {
    const float along = start + travel * (frames > 1 ? float(f) / (frames - 1) : 0.0f);
    const float along_px = reverse ? 1.0f - along : along;
    const float cx = (horizontal ? along_px : across) * size;
    const float cy = (horizontal ? across : along_px) * size;
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const float px = x + 0.5f, py = y + 0.5f;
        const float ramp =
            grad * ((px / size - 0.5f) * std::cos(angle) + (py / size - 0.5f) * std::sin(angle));
        const float alpha =
            std::clamp(0.5f - ShapeDistance(clip.shape, px - cx, py - cy, radius), 0.0f, 1.0f);
        float* out = &clip.rgb[((static_cast<size_t>(f) * size + y) * size + x) * 3];
        const float fgc[3] = {fg.r, fg.g, fg.b};
        for (int c = 0; c < 3; ++c) {
          const float bg = std::clamp(grey + tint[c] + ramp, 0.0f, 1.0f);
          out[c] = bg * (1.0f - alpha) + fgc[c] * alpha;
        }
      }
    }
  }
  return clip;
}

}  // namespace reelfarm::training
