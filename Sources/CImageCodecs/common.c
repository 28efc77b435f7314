/* Format detection, dispatch, messages and the EXIF orientation parser. */
#include "codec_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void dk_set_msg(char *msg, size_t msg_len, const char *fmt, ...) {
    if (msg == NULL || msg_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
    /* keep it on one line */
    for (char *p = msg; *p; ++p) {
        if (*p == '\n' || *p == '\r') *p = ' ';
    }
}

void dk_info_reset(dk_image_info *info) {
    if (info == NULL) return;
    memset(info, 0, sizeof(*info));
    info->png_color_type = -1;
    info->jpeg_color_space = -1;
    info->orientation = 1;
}

int dk_detect_format(const uint8_t *data, size_t len) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (data == NULL) return DK_FORMAT_UNKNOWN;
    if (len >= 8 && memcmp(data, png_sig, 8) == 0) return DK_FORMAT_PNG;
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return DK_FORMAT_JPEG;
    return DK_FORMAT_UNKNOWN;
}

static int unknown_format(const uint8_t *data, size_t len, char *msg, size_t msg_len) {
    if (data == NULL || len == 0) {
        dk_set_msg(msg, msg_len, "file is empty");
    } else {
        dk_set_msg(msg, msg_len, "unknown image format (no PNG or JPEG signature)");
    }
    return DK_ERR_UNKNOWN_FORMAT;
}

int dk_image_probe(const uint8_t *data, size_t len, dk_image_info *info,
                   char *msg, size_t msg_len) {
    dk_info_reset(info);
    if (info == NULL) {
        dk_set_msg(msg, msg_len, "internal error: no info struct");
        return DK_ERR_ARGUMENT;
    }
    switch (dk_detect_format(data, len)) {
    case DK_FORMAT_PNG: return dk_png_probe(data, len, info, msg, msg_len);
    case DK_FORMAT_JPEG: return dk_jpeg_probe(data, len, info, msg, msg_len);
    default: return unknown_format(data, len, msg, msg_len);
    }
}

int dk_image_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                         uint8_t *out, size_t out_len, dk_image_info *info,
                         char *msg, size_t msg_len) {
    dk_info_reset(info);
    if (info == NULL || out == NULL) {
        dk_set_msg(msg, msg_len, "internal error: no output buffer");
        return DK_ERR_ARGUMENT;
    }
    switch (dk_detect_format(data, len)) {
    case DK_FORMAT_PNG: return dk_png_decode_rgb8(data, len, max_pixels, out, out_len, info, msg, msg_len);
    case DK_FORMAT_JPEG: return dk_jpeg_decode_rgb8(data, len, max_pixels, out, out_len, info, msg, msg_len);
    default: return unknown_format(data, len, msg, msg_len);
    }
}

void dk_free(void *p) { free(p); }

/* ---- EXIF ---------------------------------------------------------------- */

static uint32_t rd16(const uint8_t *p, int big) {
    return big ? ((uint32_t)p[0] << 8) | p[1] : ((uint32_t)p[1] << 8) | p[0];
}

static uint32_t rd32(const uint8_t *p, int big) {
    return big ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]
               : ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

int dk_exif_orientation(const uint8_t *app1, size_t len) {
    static const uint8_t exif_id[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (app1 == NULL || len < 6 + 8 || memcmp(app1, exif_id, 6) != 0) return 0;
    const uint8_t *tiff = app1 + 6;
    size_t tlen = len - 6; /* >= 8 */
    int big;
    if (tiff[0] == 'I' && tiff[1] == 'I') big = 0;
    else if (tiff[0] == 'M' && tiff[1] == 'M') big = 1;
    else return 0;
    if (rd16(tiff + 2, big) != 42) return 0;
    uint32_t ifd = rd32(tiff + 4, big);
    /* entry count (2 bytes) must fit */
    if (ifd < 8 || (uint64_t)ifd + 2 > tlen) return 0;
    uint32_t count = rd16(tiff + ifd, big);
    for (uint32_t i = 0; i < count; ++i) {
        uint64_t off = (uint64_t)ifd + 2 + (uint64_t)i * 12;
        if (off + 12 > tlen) return 0;
        const uint8_t *e = tiff + off;
        if (rd16(e, big) != 0x0112) continue;
        uint32_t type = rd16(e + 2, big);
        uint32_t n = rd32(e + 4, big);
        uint32_t v;
        if (n < 1) return 0;
        if (type == 3 && n <= 2) { /* SHORT: value in the first 2 bytes of the field */
            v = rd16(e + 8, big);
        } else if ((type == 4 || type == 9) && n == 1) { /* LONG / SLONG, tolerated */
            v = rd32(e + 8, big);
        } else if ((type == 1 || type == 7) && n <= 4) { /* BYTE / UNDEFINED, tolerated */
            v = e[8];
        } else {
            return 0;
        }
        return (v >= 1 && v <= 8) ? (int)v : 0;
    }
    return 0;
}
