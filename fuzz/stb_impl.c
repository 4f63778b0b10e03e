/* stb_impl.c: stb_image and stb_image_resize compiled into the harnesses, from the same
 * headers (libstb-dev) as the libstb.so that loom links. The executable's definitions
 * take precedence over the shared library's, so image.c and patch.c run this copy: the
 * same code, but with ASan/UBSan checks and libFuzzer's coverage inside the decoders
 * (the packaged libstb.so has neither: a read past a buffer in it is at best a SEGV). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_resize.h>
