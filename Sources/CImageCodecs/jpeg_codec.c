/*
 * JPEG probe / decode on libjpeg(-turbo). The error manager longjmps back to
 * the setjmp of the function that created the decompressor; warnings
 * (emit_message level -1, e.g. "Premature end of JPEG file") are errors.
 */
#include "codec_internal.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs stdio.h (FILE) and size_t first. */
#include <jpeglib.h>
#include <jerror.h>

/* Progressive / multi-scan files with absurd scan counts take unbounded time
 * (each scan is a full pass over the coefficients); real files have < 20. */
#define DK_JPEG_MAX_SCANS 1000

typedef struct {
    struct jpeg_error_mgr pub; /* must be first */
    jmp_buf jb;
    char *msg;
    size_t msg_len;
} dk_jpeg_err;

static void dk_jpeg_error_exit(j_common_ptr c) {
    dk_jpeg_err *e = (dk_jpeg_err *)c->err;
    char buf[JMSG_LENGTH_MAX];
    buf[0] = 0;
    (*c->err->format_message)(c, buf);
    dk_set_msg(e->msg, e->msg_len, "JPEG %s", buf[0] ? buf : "error");
    longjmp(e->jb, 1);
}

static void dk_jpeg_emit_message(j_common_ptr c, int level) {
    /* level -1: a warning (corrupt data libjpeg would paper over) -> error.
     * level >= 0: trace messages, ignored. */
    if (level < 0) dk_jpeg_error_exit(c);
}

static void dk_jpeg_output_message(j_common_ptr c) {
    (void)c; /* never print to stderr */
}

static void dk_jpeg_progress(j_common_ptr c) {
    if (!c->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > DK_JPEG_MAX_SCANS) {
        dk_jpeg_err *e = (dk_jpeg_err *)c->err;
        dk_set_msg(e->msg, e->msg_len, "JPEG has more than %d scans", DK_JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static void dk_jpeg_install_errors(struct jpeg_decompress_struct *cinfo, dk_jpeg_err *jerr,
                                   char *msg, size_t msg_len) {
    memset(cinfo, 0, sizeof(*cinfo));
    memset(jerr, 0, sizeof(*jerr));
    cinfo->err = jpeg_std_error(&jerr->pub);
    jerr->pub.error_exit = dk_jpeg_error_exit;
    jerr->pub.emit_message = dk_jpeg_emit_message;
    jerr->pub.output_message = dk_jpeg_output_message;
    jerr->msg = msg;
    jerr->msg_len = msg_len;
}

static const char *dk_jpeg_color_name(J_COLOR_SPACE cs) {
    switch (cs) {
    case JCS_GRAYSCALE: return "gray";
    case JCS_YCbCr: return "ycbcr";
    case JCS_RGB: return "rgb";
    case JCS_CMYK: return "cmyk";
    case JCS_YCCK: return "ycck";
    default: return "unknown";
    }
}

/* Reads markers up to SOS (with APP1 saved) and fills info. May longjmp. */
static void dk_jpeg_read_header(struct jpeg_decompress_struct *cinfo, const uint8_t *data, size_t len,
                                dk_image_info *info) {
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)len);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    (void)jpeg_read_header(cinfo, TRUE); /* TRUE: a tables-only stream is an error */

    info->format = DK_FORMAT_JPEG;
    info->width = cinfo->image_width;
    info->height = cinfo->image_height;
    info->bit_depth = cinfo->data_precision;
    info->channels = cinfo->num_components;
    info->png_color_type = -1;
    info->interlaced = cinfo->progressive_mode ? 1 : 0;
    info->arithmetic = cinfo->arith_code ? 1 : 0;
    info->jpeg_color_space = (int)cinfo->jpeg_color_space;
    snprintf(info->color_name, sizeof(info->color_name), "%s", dk_jpeg_color_name(cinfo->jpeg_color_space));
    info->orientation = 1;
    /* The first APP1 segment that carries "Exif\0\0" decides. */
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m != NULL; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data == NULL) continue;
        if (m->data_length < 6 || memcmp(m->data, "Exif\0\0", 6) != 0) continue;
        int o = dk_exif_orientation(m->data, m->data_length);
        info->orientation = (o >= 1 && o <= 8) ? o : 1;
        break;
    }
}

int dk_jpeg_probe(const uint8_t *data, size_t len, dk_image_info *info,
                  char *msg, size_t msg_len) {
    struct jpeg_decompress_struct cinfo;
    dk_jpeg_err jerr;
    dk_jpeg_install_errors(&cinfo, &jerr, msg, msg_len);
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return DK_ERR_CORRUPT;
    }
    dk_jpeg_read_header(&cinfo, data, len, info);
    jpeg_destroy_decompress(&cinfo);
    return DK_OK;
}

int dk_jpeg_decode_rgb8(const uint8_t *data, size_t len, uint64_t max_pixels,
                        uint8_t *out, size_t out_len, dk_image_info *info,
                        char *msg, size_t msg_len) {
    struct jpeg_decompress_struct cinfo;
    dk_jpeg_err jerr;
    uint8_t *volatile row = NULL;
    dk_jpeg_install_errors(&cinfo, &jerr, msg, msg_len);
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        return DK_ERR_CORRUPT;
    }
    dk_jpeg_read_header(&cinfo, data, len, info);

    /* Pixel cap and buffer size, before libjpeg allocates anything sized
     * from the frame. */
    uint64_t px = (uint64_t)info->width * (uint64_t)info->height;
    if (info->width == 0 || info->height == 0) {
        jpeg_destroy_decompress(&cinfo);
        dk_set_msg(msg, msg_len, "image has zero width or height");
        return DK_ERR_CORRUPT;
    }
    if (px > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        dk_set_msg(msg, msg_len, "%ux%u pixels exceeds the limit of %llu pixels", info->width, info->height,
                   (unsigned long long)max_pixels);
        return DK_ERR_TOO_LARGE;
    }
    size_t w = info->width, h = info->height;
    if (out_len / 3 / w != h || out_len != w * h * 3) {
        jpeg_destroy_decompress(&cinfo);
        dk_set_msg(msg, msg_len, "internal error: output buffer has %zu bytes, need %zu", out_len, w * h * 3);
        return DK_ERR_ARGUMENT;
    }

    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default:
        jpeg_destroy_decompress(&cinfo);
        dk_set_msg(msg, msg_len, "JPEG with %d components in an unknown colour space is not supported",
                   info->channels);
        return DK_ERR_UNSUPPORTED;
    }
    /* libjpeg-turbo defaults, set explicitly. */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.do_block_smoothing = TRUE;
    cinfo.scale_num = 1;
    cinfo.scale_denom = 1;
    cinfo.quantize_colors = FALSE;
    struct jpeg_progress_mgr progress;
    memset(&progress, 0, sizeof(progress));
    progress.progress_monitor = dk_jpeg_progress;
    cinfo.progress = &progress;

    (void)jpeg_start_decompress(&cinfo);
    int nc = cinfo.output_components;
    if (cinfo.output_width != w || cinfo.output_height != h || (nc != 1 && nc != 3 && nc != 4)) {
        ERREXIT(&cinfo, JERR_NOT_COMPILED); /* cannot happen with scale 1/1 */
    }
    if (nc != 3) {
        row = (uint8_t *)malloc(w * (size_t)nc);
        if (row == NULL) ERREXIT1(&cinfo, JERR_OUT_OF_MEMORY, 0);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        uint8_t *dst = out + y * w * 3;
        JSAMPROW rp = (nc == 3) ? dst : row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            ERREXIT(&cinfo, JERR_INPUT_EMPTY); /* suspension cannot happen with a memory source */
        }
        if (nc == 1) {
            for (size_t x = 0; x < w; ++x) {
                uint8_t v = row[x];
                dst[3 * x] = v;
                dst[3 * x + 1] = v;
                dst[3 * x + 2] = v;
            }
        } else if (nc == 4) {
            /* libjpeg's CMYK as delivered (Adobe: inverted, 255 = no ink). */
            for (size_t x = 0; x < w; ++x) {
                unsigned c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                dst[3 * x] = (uint8_t)((c * k + 127) / 255);
                dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    (void)jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return DK_OK;
}
