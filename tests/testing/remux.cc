#include "tests/testing/remux.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "tests/testing/fixtures.h"

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/display.h>
}

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

// Stream-copies the best video stream of `in` to `out`. `setup` edits the output
// stream before the header is written; `place` sets packet n's times (in the output
// time base) and returns false to stop.
void Remux(const fs::path& in, const fs::path& out, const std::function<void(AVStream*)>& setup,
           const std::function<bool(AVPacket*, int64_t, const AVStream&, const AVStream&)>& place) {
  INFO("remux " << in << " to " << out);
  AVFormatContext* ic = nullptr;
  REQUIRE(avformat_open_input(&ic, in.c_str(), nullptr, nullptr) == 0);
  REQUIRE(avformat_find_stream_info(ic, nullptr) >= 0);
  const int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  REQUIRE(vi >= 0);
  const AVStream& is = *ic->streams[vi];
  AVFormatContext* oc = nullptr;
  REQUIRE(avformat_alloc_output_context2(&oc, nullptr, nullptr, out.c_str()) >= 0);
  AVStream* os = avformat_new_stream(oc, nullptr);
  REQUIRE(os != nullptr);
  REQUIRE(avcodec_parameters_copy(os->codecpar, is.codecpar) >= 0);
  os->codecpar->codec_tag = 0;
  os->time_base = is.time_base;
  os->avg_frame_rate = is.avg_frame_rate;
  setup(os);
  REQUIRE(avio_open(&oc->pb, out.c_str(), AVIO_FLAG_WRITE) >= 0);
  REQUIRE(avformat_write_header(oc, nullptr) >= 0);
  AVPacket* pkt = av_packet_alloc();
  int64_t n = 0;
  while (av_read_frame(ic, pkt) >= 0) {
    if (pkt->stream_index == vi) {
      if (!place(pkt, n++, is, *os)) {
        av_packet_unref(pkt);
        break;
      }
      pkt->stream_index = 0;
      pkt->pos = -1;
      REQUIRE(av_interleaved_write_frame(oc, pkt) >= 0);
    }
    av_packet_unref(pkt);
  }
  REQUIRE(av_write_trailer(oc) >= 0);
  av_packet_free(&pkt);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
  avformat_close_input(&ic);
}

}  // namespace

void RemuxRotated(const fs::path& in, const fs::path& out, int degrees) {
  Remux(
      in, out,
      [&](AVStream* os) {
        uint8_t* matrix =
            av_stream_new_side_data(os, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
        REQUIRE(matrix != nullptr);
        av_display_rotation_set(reinterpret_cast<int32_t*>(matrix), degrees);
      },
      [](AVPacket* pkt, int64_t, const AVStream& is, const AVStream& os) {
        av_packet_rescale_ts(pkt, is.time_base, os.time_base);
        return true;
      });
}

int ProbedClockwiseRotation(const fs::path& path) {
  const std::string out = Capture(
      "ffprobe -v error -select_streams v:0 -show_entries stream_side_data=rotation "
      "-of default=nw=1:nk=1 '" +
      path.string() + "'");
  const long ccw = std::lround(std::atof(out.c_str()));
  return static_cast<int>(((-ccw % 360) + 360) % 360);
}

void RemuxWithoutFrameRate(const fs::path& in, const fs::path& out) {
  Remux(
      in, out,
      [](AVStream* os) {
        os->time_base = AVRational{1, 1000};
        os->avg_frame_rate = AVRational{0, 0};
      },
      [](AVPacket* pkt, int64_t n, const AVStream&, const AVStream& os) {
        if (n >= 2) return false;
        pkt->pts = pkt->dts = av_rescale_q(n * 370, AVRational{1, 1000}, os.time_base);
        pkt->duration = 0;
        return true;
      });
}

}  // namespace reelfarm::testing
