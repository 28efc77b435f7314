/*
 * CImageCodecs: a small C layer around libpng and libjpeg(-turbo) for DenseKit.
 *
 * Rules kept by every function here:
 *   - libpng and libjpeg report errors by longjmp. Every setjmp/longjmp pair
 *     lives inside one function of this target; no longjmp ever crosses a
 *     Swift frame.
 *   - Each function returns a status code (DK_OK = 0 or a DK_ERR_* value) and,
 *     on failure, writes a NUL-terminated one-line message into the caller's
 *     buffer `msg` of `msg_len` bytes (DK_MSG_LEN is a good size).
 *   - Decoders never allocate pixel memory sized from an untrusted header: the
 *     caller probes first (dk_image_probe), checks the pixel count, allocates,
 *     and the decode call re-checks width*height against `max_pixels` and the
 *     output size against the buffer length before writing.
 *   - libjpeg warnings (e.g. "Premature end of JPEG file") are errors.
 */
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Suggested size of the message buffers. */
#define DK_MSG_LEN 256

/** Status codes. */
enum {
    DK_OK = 0,
    DK_ERR_UNKNOWN_FORMAT = 1, /* not a PNG or JPEG signature */
    DK_ERR_CORRUPT = 2,        /* the codec refused the data */
    DK_ERR_TOO_LARGE = 3,      /* width*height above max_pixels */
    DK_ERR_NOMEM = 4,          /* an allocation failed */
    DK_ERR_IO = 5,             /* writing to a FILE* failed */
    DK_ERR_ARGUMENT = 6,       /* bad arguments (sizes, buffer lengths) */
    DK_ERR_UNSUPPORTED = 7     /* valid image of a kind this call does not handle */
};

/** Container formats. */
enum { DK_FORMAT_UNKNOWN = 0, DK_FORMAT_PNG = 1, DK_FORMAT_JPEG = 2 };

/** PNG encode kinds. */
enum {
    DK_PNG_RGB8 = 0,    /* 3 bytes per pixel, R G B */
    DK_PNG_GRAY8 = 1,   /* 1 byte per pixel */
    DK_PNG_GRAY16 = 2,  /* 1 uint16_t per pixel, host byte order */
    DK_PNG_PALETTE8 = 3 /* 1 byte (palette index) per pixel, 8-bit palette PNG */
};

/**
 * What a header says. Filled by dk_image_probe and the decode calls.
 * Sizes are the stored ones (IHDR / SOF), before EXIF orientation.
 */
typedef struct {
    int format;            /* DK_FORMAT_* */
    uint32_t width;        /* stored width in pixels */
    uint32_t height;       /* stored height in pixels */
    int bit_depth;         /* PNG: 1,2,4,8,16; JPEG: data precision (8) */
    int channels;          /* stored components: PNG 1..4, JPEG 1, 3 or 4 */
    int png_color_type;    /* PNG colour type (0,2,3,4,6); -1 for JPEG */
    int interlaced;        /* PNG: Adam7; JPEG: progressive (SOF2/SOF10) */
    int arithmetic;        /* JPEG: arithmetic-coded; 0 for PNG */
    int jpeg_color_space;  /* JPEG: libjpeg J_COLOR_SPACE value; -1 for PNG */
    int orientation;       /* EXIF orientation 1..8 (1 when absent; PNG: 1) */
    char color_name[16];   /* "gray", "gray+alpha", "rgb", "rgba", "palette",
                              "ycbcr", "cmyk", "ycck", ... */
} dk_image_info;

/** Format from the first bytes (PNG signature or JPEG SOI FF D8 FF). */
int dk_detect_format(const uint8_t *data, size_t len);

/**
 * Reads the header only (PNG: chunks up to the first IDAT; JPEG: markers up
 * to the first SOS, APP1 saved for EXIF). Allocates no pixel memory.
 */
int dk_image_probe(const uint8_t *data, size_t len, dk_image_info *info,
                   char *msg, size_t msg_len);

/**
 * Decodes the whole image into `out`, RGB8 interleaved, row-major, in STORED
 * orientation (EXIF is reported in info->orientation but not applied).
 * `out_len` must be exactly width*height*3 of the stored image, and
 * width*height must not exceed `max_pixels`; both are checked again here.
 * PNG: 16-bit >> 8, gray 1/2/4 scaled, gray replicated, palette via PLTE,
 * tRNS ignored, alpha dropped. JPEG: libjpeg defaults; CMYK/YCCK converted
 * as R = (C*K + 127) / 255 etc.
 */
int dk_image_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                         uint8_t *out, size_t out_len, dk_image_info *info,
                         char *msg, size_t msg_len);

/**
 * Decodes a gray (colour type 0) or palette (colour type 3) PNG into its
 * stored sample values, unscaled: 16-bit samples as 0..65535, 8-bit as
 * 0..255, 1/2/4-bit as 0..2^b-1, palette images as their indices (PLTE and
 * tRNS not applied). `out_count` must be width*height. Other kinds return
 * DK_ERR_UNSUPPORTED.
 */
int dk_png_decode_samples(const uint8_t *data, size_t len, uint64_t max_pixels,
                          uint16_t *out, size_t out_count, dk_image_info *info,
                          char *msg, size_t msg_len);

/**
 * Encodes a PNG into a buffer allocated with malloc (*out, *out_len); free it
 * with dk_free. `pixels` holds width*height samples of the kind's layout
 * (pixels_len in BYTES). For DK_PNG_PALETTE8, `palette` holds palette_count
 * RGB triples (1..256) and every index must be < palette_count; otherwise
 * palette must be NULL and palette_count 0.
 */
int dk_png_encode_mem(int kind, uint32_t width, uint32_t height,
                      const void *pixels, size_t pixels_len,
                      const uint8_t *palette, int palette_count,
                      uint8_t **out, size_t *out_len, char *msg, size_t msg_len);

/** As dk_png_encode_mem, writing to an open FILE* (not closed, flushed). */
int dk_png_encode_file(int kind, uint32_t width, uint32_t height,
                       const void *pixels, size_t pixels_len,
                       const uint8_t *palette, int palette_count,
                       FILE *fp, char *msg, size_t msg_len);

/** Frees a buffer returned by dk_png_encode_mem. */
void dk_free(void *p);

/**
 * EXIF orientation from the payload of an APP1 segment (starting with
 * "Exif\0\0"). Returns 1..8, or 0 when absent, malformed or out of range.
 * Every offset is bounds-checked.
 */
int dk_exif_orientation(const uint8_t *app1, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CIMAGECODECS_H */
