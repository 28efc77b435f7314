/*
 * PNG probe / decode / encode on libpng 1.6. Every setjmp is in the function
 * that creates the png struct, and libpng's longjmp never leaves this file.
 */
#include "codec_internal.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* PNG's own limit on a dimension (2^31 - 1). */
#define DK_PNG_DIM_MAX 0x7fffffffU

/* ---- shared read plumbing ------------------------------------------------ */

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
    char *msg;
    size_t msg_len;
} dk_png_src;

static void dk_png_error_fn(png_structp png, png_const_charp m) {
    dk_png_src *s = (dk_png_src *)png_get_error_ptr(png);
    if (s != NULL) dk_set_msg(s->msg, s->msg_len, "PNG %s", m ? m : "error");
    png_longjmp(png, 1);
}

static void dk_png_warning_fn(png_structp png, png_const_charp m) {
    (void)png;
    (void)m; /* warnings (ancillary chunk problems) are ignored */
}

static void dk_png_read_fn(png_structp png, png_bytep buf, size_t n) {
    dk_png_src *s = (dk_png_src *)png_get_io_ptr(png);
    if (s == NULL || n > s->len - s->pos) {
        png_error(png, "unexpected end of data (file truncated)");
        return;
    }
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
}

/* Creates the read structs. Returns DK_OK or DK_ERR_NOMEM. No longjmp here:
 * libpng guards its own creation with a private jmp_buf. */
static int dk_png_create_read(dk_png_src *src, png_structp *png, png_infop *info) {
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, dk_png_error_fn, dk_png_warning_fn);
    if (*png == NULL) {
        dk_set_msg(src->msg, src->msg_len, "out of memory creating the PNG reader");
        return DK_ERR_NOMEM;
    }
    *info = png_create_info_struct(*png);
    if (*info == NULL) {
        png_destroy_read_struct(png, NULL, NULL);
        dk_set_msg(src->msg, src->msg_len, "out of memory creating the PNG reader");
        return DK_ERR_NOMEM;
    }
    return DK_OK;
}

/* Configures a fresh reader. Must be called after setjmp was armed (it may
 * not error today, but libpng is allowed to). */
static void dk_png_configure_read(png_structp png, dk_png_src *src, uint32_t dim_limit) {
    png_set_read_fn(png, src, dk_png_read_fn);
    /* Critical chunk CRC errors are errors, ancillary ones warn+discard
     * (libpng's defaults, set explicitly). */
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_DEFAULT);
    png_set_user_limits(png, dim_limit, dim_limit);
    /* Bound the memory any single ancillary chunk (iCCP, zTXt, ...) may use. */
    png_set_chunk_malloc_max(png, 8u * 1024u * 1024u);
    png_set_chunk_cache_max(png, 1000);
}

static const char *dk_png_color_name(int ct) {
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY: return "gray";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "gray+alpha";
    case PNG_COLOR_TYPE_RGB: return "rgb";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "rgba";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    default: return "unknown";
    }
}

/* Reads IHDR (+ chunks up to IDAT) into info. May longjmp. */
static void dk_png_fill_info(png_structp png, png_infop pinfo, dk_image_info *info) {
    png_uint_32 w = 0, h = 0;
    int bd = 0, ct = 0, il = 0;
    png_get_IHDR(png, pinfo, &w, &h, &bd, &ct, &il, NULL, NULL);
    info->format = DK_FORMAT_PNG;
    info->width = w;
    info->height = h;
    info->bit_depth = bd;
    info->png_color_type = ct;
    info->channels = png_get_channels(png, pinfo);
    info->interlaced = (il != PNG_INTERLACE_NONE);
    info->arithmetic = 0;
    info->jpeg_color_space = -1;
    info->orientation = 1;
    snprintf(info->color_name, sizeof(info->color_name), "%s", dk_png_color_name(ct));
}

static uint32_t dk_dim_limit(uint64_t max_pixels) {
    return max_pixels >= DK_PNG_DIM_MAX ? DK_PNG_DIM_MAX : (max_pixels == 0 ? 1u : (uint32_t)max_pixels);
}

static int dk_check_pixels(const dk_image_info *info, uint64_t max_pixels, char *msg, size_t msg_len) {
    uint64_t px = (uint64_t)info->width * (uint64_t)info->height;
    if (info->width == 0 || info->height == 0) {
        dk_set_msg(msg, msg_len, "image has zero width or height");
        return DK_ERR_CORRUPT;
    }
    if (px > max_pixels) {
        dk_set_msg(msg, msg_len, "%ux%u pixels exceeds the limit of %llu pixels",
                   info->width, info->height, (unsigned long long)max_pixels);
        return DK_ERR_TOO_LARGE;
    }
    return DK_OK;
}

/* ---- probe --------------------------------------------------------------- */

int dk_png_probe(const uint8_t *data, size_t len, dk_image_info *info,
                 char *msg, size_t msg_len) {
    dk_png_src src = {data, len, 0, msg, msg_len};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    int rc = dk_png_create_read(&src, &png, &pinfo);
    if (rc != DK_OK) return rc;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return DK_ERR_CORRUPT;
    }
    dk_png_configure_read(png, &src, DK_PNG_DIM_MAX);
    png_read_info(png, pinfo);
    dk_png_fill_info(png, pinfo, info);
    png_destroy_read_struct(&png, &pinfo, NULL);
    return DK_OK;
}

/* ---- decode to RGB8 ------------------------------------------------------ */

int dk_png_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                       uint8_t *out, size_t out_len, dk_image_info *info,
                       char *msg, size_t msg_len) {
    dk_png_src src = {data, len, 0, msg, msg_len};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    volatile int status = DK_ERR_CORRUPT;
    int rc = dk_png_create_read(&src, &png, &pinfo);
    if (rc != DK_OK) return rc;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return status;
    }
    dk_png_configure_read(png, &src, dk_dim_limit(max_pixels));
    png_read_info(png, pinfo);
    dk_png_fill_info(png, pinfo, info);

    rc = dk_check_pixels(info, max_pixels, msg, msg_len);
    if (rc != DK_OK) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return rc;
    }
    size_t w = info->width, h = info->height;
    if (out_len / 3 / w != h || out_len != w * h * 3) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        dk_set_msg(msg, msg_len, "internal error: output buffer has %zu bytes, need %zu", out_len, w * h * 3);
        return DK_ERR_ARGUMENT;
    }

    int ct = info->png_color_type;
    if (info->bit_depth == 16) png_set_strip_16(png);            /* v >> 8 */
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png); /* PLTE; tRNS alpha stripped below */
    if (ct == PNG_COLOR_TYPE_GRAY && info->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_alpha(png);                                     /* drop, not composite */
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);

    if (png_get_bit_depth(png, pinfo) != 8 || png_get_channels(png, pinfo) != 3 ||
        png_get_rowbytes(png, pinfo) != w * 3) {
        status = DK_ERR_UNSUPPORTED;
        png_error(png, "internal error: unexpected row layout after transforms");
    }
    for (int pass = 0; pass < passes; ++pass) {
        for (size_t y = 0; y < h; ++y) {
            png_read_row(png, out + y * w * 3, NULL);
        }
    }
    /* Reads the rest (checks the last CRCs and IEND). */
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &pinfo, NULL);
    return DK_OK;
}

/* ---- decode raw samples (gray / palette indices) ------------------------- */

static void dk_widen_row(const uint8_t *row, uint16_t *dst, size_t w, int sixteen) {
    if (sixteen) {
        for (size_t x = 0; x < w; ++x) dst[x] = (uint16_t)(((uint16_t)row[2 * x] << 8) | row[2 * x + 1]);
    } else {
        for (size_t x = 0; x < w; ++x) dst[x] = row[x];
    }
}

int dk_png_decode_samples(const uint8_t *data, size_t len, uint64_t max_pixels,
                          uint16_t *out, size_t out_count, dk_image_info *info,
                          char *msg, size_t msg_len) {
    dk_info_reset(info);
    if (info == NULL || out == NULL) {
        dk_set_msg(msg, msg_len, "internal error: no output buffer");
        return DK_ERR_ARGUMENT;
    }
    if (dk_detect_format(data, len) != DK_FORMAT_PNG) {
        dk_set_msg(msg, msg_len, len == 0 ? "file is empty" : "not a PNG file (no PNG signature)");
        return DK_ERR_UNKNOWN_FORMAT;
    }
    dk_png_src src = {data, len, 0, msg, msg_len};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    uint8_t *volatile buf = NULL;
    volatile int status = DK_ERR_CORRUPT;
    int rc = dk_png_create_read(&src, &png, &pinfo);
    if (rc != DK_OK) return rc;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        free(buf);
        return status;
    }
    dk_png_configure_read(png, &src, dk_dim_limit(max_pixels));
    png_read_info(png, pinfo);
    dk_png_fill_info(png, pinfo, info);

    int ct = info->png_color_type;
    if (ct != PNG_COLOR_TYPE_GRAY && ct != PNG_COLOR_TYPE_PALETTE) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        dk_set_msg(msg, msg_len, "PNG colour type is %s; expected gray or palette", info->color_name);
        return DK_ERR_UNSUPPORTED;
    }
    rc = dk_check_pixels(info, max_pixels, msg, msg_len);
    if (rc != DK_OK) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return rc;
    }
    size_t w = info->width, h = info->height;
    if (out_count / w != h || out_count != w * h) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        dk_set_msg(msg, msg_len, "internal error: output buffer has %zu samples, need %zu", out_count, w * h);
        return DK_ERR_ARGUMENT;
    }
    if (info->bit_depth < 8) png_set_packing(png); /* one byte per sample, unscaled */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    int sixteen = info->bit_depth == 16;
    size_t rowbytes = png_get_rowbytes(png, pinfo);
    if (rowbytes != w * (sixteen ? 2 : 1)) {
        status = DK_ERR_UNSUPPORTED;
        png_error(png, "internal error: unexpected row layout");
    }
    if (passes == 1) {
        buf = (uint8_t *)malloc(rowbytes);
        if (buf == NULL) {
            status = DK_ERR_NOMEM;
            png_error(png, "out of memory");
        }
        for (size_t y = 0; y < h; ++y) {
            png_read_row(png, buf, NULL);
            dk_widen_row(buf, out + y * w, w, sixteen);
        }
    } else {
        /* Adam7 passes fill rows in place: keep the whole image. */
        buf = (uint8_t *)malloc(rowbytes * h);
        if (buf == NULL) {
            status = DK_ERR_NOMEM;
            png_error(png, "out of memory");
        }
        memset(buf, 0, rowbytes * h);
        for (int pass = 0; pass < passes; ++pass) {
            for (size_t y = 0; y < h; ++y) png_read_row(png, buf + y * rowbytes, NULL);
        }
        for (size_t y = 0; y < h; ++y) dk_widen_row(buf + y * rowbytes, out + y * w, w, sixteen);
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(buf);
    return DK_OK;
}

/* ---- encode -------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;   /* memory target (NULL for FILE) */
    size_t len;
    size_t cap;
    FILE *fp;       /* FILE target */
    int io_errno;   /* errno of a failed fwrite, 0 otherwise */
    int nomem;
    char *msg;
    size_t msg_len;
} dk_png_sink;

static void dk_png_sink_error_fn(png_structp png, png_const_charp m) {
    dk_png_sink *s = (dk_png_sink *)png_get_error_ptr(png);
    if (s != NULL) dk_set_msg(s->msg, s->msg_len, "PNG encode: %s", m ? m : "error");
    png_longjmp(png, 1);
}

static void dk_png_write_fn(png_structp png, png_bytep d, size_t n) {
    dk_png_sink *s = (dk_png_sink *)png_get_io_ptr(png);
    if (s->fp != NULL) {
        if (n > 0 && fwrite(d, 1, n, s->fp) != n) {
            s->io_errno = errno ? errno : EIO;
            png_error(png, "write failed");
        }
        return;
    }
    if (n > s->cap - s->len) {
        size_t need = s->len + n;
        if (need < s->len) { s->nomem = 1; png_error(png, "output too large"); }
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) { cap = need; break; }
            cap *= 2;
        }
        uint8_t *nb = (uint8_t *)realloc(s->buf, cap);
        if (nb == NULL) { s->nomem = 1; png_error(png, "out of memory"); }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, d, n);
    s->len += n;
}

static void dk_png_flush_fn(png_structp png) {
    dk_png_sink *s = (dk_png_sink *)png_get_io_ptr(png);
    if (s->fp != NULL) fflush(s->fp);
}

static int dk_png_encode_check(int kind, uint32_t width, uint32_t height, const void *pixels,
                               size_t pixels_len, const uint8_t *palette, int palette_count,
                               size_t *bytes_per_pixel, char *msg, size_t msg_len) {
    size_t bpp;
    switch (kind) {
    case DK_PNG_RGB8: bpp = 3; break;
    case DK_PNG_GRAY8: bpp = 1; break;
    case DK_PNG_GRAY16: bpp = 2; break;
    case DK_PNG_PALETTE8: bpp = 1; break;
    default:
        dk_set_msg(msg, msg_len, "unknown PNG encode kind %d", kind);
        return DK_ERR_ARGUMENT;
    }
    if (width == 0 || height == 0 || width > DK_PNG_DIM_MAX || height > DK_PNG_DIM_MAX) {
        dk_set_msg(msg, msg_len, "PNG size %ux%u is invalid (each side must be 1..2147483647)", width, height);
        return DK_ERR_ARGUMENT;
    }
    if (pixels == NULL) {
        dk_set_msg(msg, msg_len, "no pixel data");
        return DK_ERR_ARGUMENT;
    }
    uint64_t need = (uint64_t)width * height;
    if (need > SIZE_MAX / bpp || pixels_len != (size_t)need * bpp) {
        dk_set_msg(msg, msg_len, "pixel buffer has %zu bytes; %ux%u needs %llu", pixels_len, width, height,
                   (unsigned long long)need * bpp);
        return DK_ERR_ARGUMENT;
    }
    if (kind == DK_PNG_PALETTE8) {
        if (palette == NULL || palette_count < 1 || palette_count > 256) {
            dk_set_msg(msg, msg_len, "palette must have 1..256 entries (has %d)", palette_count);
            return DK_ERR_ARGUMENT;
        }
        const uint8_t *idx = (const uint8_t *)pixels;
        for (size_t i = 0; i < pixels_len; ++i) {
            if (idx[i] >= palette_count) {
                dk_set_msg(msg, msg_len, "palette index %u at pixel %zu is outside the palette of %d entries",
                           idx[i], i, palette_count);
                return DK_ERR_ARGUMENT;
            }
        }
    } else if (palette != NULL || palette_count != 0) {
        dk_set_msg(msg, msg_len, "a palette is only valid for palette PNGs");
        return DK_ERR_ARGUMENT;
    }
    *bytes_per_pixel = bpp;
    return DK_OK;
}

static int dk_png_encode(int kind, uint32_t width, uint32_t height, const void *pixels,
                         size_t pixels_len, const uint8_t *palette, int palette_count,
                         dk_png_sink *sink) {
    size_t bpp = 0;
    int rc = dk_png_encode_check(kind, width, height, pixels, pixels_len, palette, palette_count, &bpp,
                                 sink->msg, sink->msg_len);
    if (rc != DK_OK) return rc;

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, dk_png_sink_error_fn,
                                              dk_png_warning_fn);
    if (png == NULL) {
        dk_set_msg(sink->msg, sink->msg_len, "out of memory creating the PNG writer");
        return DK_ERR_NOMEM;
    }
    png_infop pinfo = png_create_info_struct(png);
    if (pinfo == NULL) {
        png_destroy_write_struct(&png, NULL);
        dk_set_msg(sink->msg, sink->msg_len, "out of memory creating the PNG writer");
        return DK_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &pinfo);
        if (sink->io_errno != 0) {
            dk_set_msg(sink->msg, sink->msg_len, "write failed: %s", strerror(sink->io_errno));
            return DK_ERR_IO;
        }
        return sink->nomem ? DK_ERR_NOMEM : DK_ERR_ARGUMENT;
    }
    png_set_write_fn(png, sink, dk_png_write_fn, dk_png_flush_fn);
    png_set_user_limits(png, DK_PNG_DIM_MAX, DK_PNG_DIM_MAX);
    png_set_compression_level(png, 6);

    int ct = PNG_COLOR_TYPE_RGB, bd = 8;
    switch (kind) {
    case DK_PNG_RGB8: ct = PNG_COLOR_TYPE_RGB; bd = 8; break;
    case DK_PNG_GRAY8: ct = PNG_COLOR_TYPE_GRAY; bd = 8; break;
    case DK_PNG_GRAY16: ct = PNG_COLOR_TYPE_GRAY; bd = 16; break;
    case DK_PNG_PALETTE8: ct = PNG_COLOR_TYPE_PALETTE; bd = 8; break;
    }
    png_set_IHDR(png, pinfo, width, height, bd, ct, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (kind == DK_PNG_PALETTE8) {
        png_color pal[256];
        for (int i = 0; i < palette_count; ++i) {
            pal[i].red = palette[3 * i];
            pal[i].green = palette[3 * i + 1];
            pal[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, pinfo, pal, palette_count);
    }
    png_write_info(png, pinfo);
    if (kind == DK_PNG_GRAY16) {
        const uint16_t one = 1;
        if (*(const uint8_t *)&one == 1) png_set_swap(png); /* host little-endian -> PNG big-endian */
    }
    const uint8_t *p = (const uint8_t *)pixels;
    size_t stride = (size_t)width * bpp;
    for (uint32_t y = 0; y < height; ++y) png_write_row(png, p + (size_t)y * stride);
    png_write_end(png, pinfo);
    png_destroy_write_struct(&png, &pinfo);
    if (sink->fp != NULL && fflush(sink->fp) != 0) {
        dk_set_msg(sink->msg, sink->msg_len, "write failed: %s", strerror(errno));
        return DK_ERR_IO;
    }
    return DK_OK;
}

int dk_png_encode_mem(int kind, uint32_t width, uint32_t height,
                      const void *pixels, size_t pixels_len,
                      const uint8_t *palette, int palette_count,
                      uint8_t **out, size_t *out_len, char *msg, size_t msg_len) {
    if (out == NULL || out_len == NULL) {
        dk_set_msg(msg, msg_len, "internal error: no output pointers");
        return DK_ERR_ARGUMENT;
    }
    *out = NULL;
    *out_len = 0;
    dk_png_sink sink;
    memset(&sink, 0, sizeof(sink));
    sink.msg = msg;
    sink.msg_len = msg_len;
    int rc = dk_png_encode(kind, width, height, pixels, pixels_len, palette, palette_count, &sink);
    if (rc != DK_OK) {
        free(sink.buf);
        return rc;
    }
    *out = sink.buf;
    *out_len = sink.len;
    return DK_OK;
}

int dk_png_encode_file(int kind, uint32_t width, uint32_t height,
                       const void *pixels, size_t pixels_len,
                       const uint8_t *palette, int palette_count,
                       FILE *fp, char *msg, size_t msg_len) {
    if (fp == NULL) {
        dk_set_msg(msg, msg_len, "internal error: no FILE");
        return DK_ERR_ARGUMENT;
    }
    dk_png_sink sink;
    memset(&sink, 0, sizeof(sink));
    sink.fp = fp;
    sink.msg = msg;
    sink.msg_len = msg_len;
    return dk_png_encode(kind, width, height, pixels, pixels_len, palette, palette_count, &sink);
}
