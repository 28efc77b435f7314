/* Internal helpers shared by the CImageCodecs sources. Not part of the API. */
#ifndef DK_CODEC_INTERNAL_H
#define DK_CODEC_INTERNAL_H

#include "include/CImageCodecs.h"

/* Writes a one-line message (printf-style) into msg (may be NULL). */
void dk_set_msg(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears info and sets the neutral defaults. */
void dk_info_reset(dk_image_info *info);

int dk_png_probe(const uint8_t *data, size_t len, dk_image_info *info,
                 char *msg, size_t msg_len);
int dk_png_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                       uint8_t *out, size_t out_len, dk_image_info *info,
                       char *msg, size_t msg_len);
int dk_jpeg_probe(const uint8_t *data, size_t len, dk_image_info *info,
                  char *msg, size_t msg_len);
int dk_jpeg_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                        uint8_t *out, size_t out_len, dk_image_info *info,
                        char *msg, size_t msg_len);

#endif
