#include "media/exr_attributes.h"

// ImfHeader.h first: it declares Imf::Chromaticities with its export attribute.
#include <ImfHeader.h>

#include <ImfChromaticities.h>
#include <ImfInputFile.h>
#include <ImfOutputFile.h>
#include <ImfStandardAttributes.h>
#include <ImfStdIO.h>

namespace reelfarm::media {

absl::StatusOr<std::optional<Chromaticities>> ReadExrChromaticities(const std::string& path) {
  try {
    Imf::InputFile in(path.c_str());
    if (!Imf::hasChromaticities(in.header())) return std::optional<Chromaticities>();
    const Imf::Chromaticities& c = Imf::chromaticities(in.header());
    return std::optional<Chromaticities>(Chromaticities{c.red.x, c.red.y, c.green.x, c.green.y,
                                                        c.blue.x, c.blue.y, c.white.x, c.white.y});
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError("input '" + path +
                                         "': OpenEXR cannot read its header: " + e.what());
  }
}

absl::StatusOr<std::string> WithExrChromaticities(const std::string& exr, const Chromaticities& c,
                                                  const std::string& context) {
  try {
    Imf::StdISStream in_stream;
    in_stream.str(exr);
    Imf::InputFile in(in_stream);
    Imf::Header header = in.header();
    Imf::addChromaticities(
        header,
        Imf::Chromaticities(Imath::V2f(c.red_x, c.red_y), Imath::V2f(c.green_x, c.green_y),
                            Imath::V2f(c.blue_x, c.blue_y), Imath::V2f(c.white_x, c.white_y)));
    Imf::StdOSStream out_stream;
    {
      Imf::OutputFile out(out_stream, header);
      out.copyPixels(in);
    }
    return out_stream.str();
  } catch (const std::exception& e) {
    return absl::InternalError(context + ": OpenEXR cannot add the chromaticities: " + e.what());
  }
}

}  // namespace reelfarm::media
