/* SPDX-License-Identifier: MIT */
/*
 * gdal_MMCL.so: the GDAL driver plugin for lazy mmcl products (design
 * section 4.2). It opens a JSON descriptor (*.mmcl.json, or MMCL:<path or
 * JSON text>) as a read-only raster whose blocks are computed on demand by
 * the C library (include/mmcl/product.h): an embedding or an
 * information-loss map (Float32, NaN nodata), or a picture of one (rgb:
 * Byte red, green, blue, alpha). This file is a thin adapter: it
 * holds no numerics, includes only the public mmcl headers and GDAL's, and
 * turns every mmcl error into a CPLError.
 *
 * - IReadBlock of any band computes all the bands of the block in one call
 *   and puts the other bands' blocks into GDAL's block cache.
 * - A dataset-level RasterIO at full resolution that spans several blocks
 *   (gdal_translate, ReadAsArray) is computed directly into the caller's
 *   buffer, strip by strip, the blocks spread over the library's threads;
 *   a band-level one first fills the block cache of every band the same
 *   way. Values do not depend on the path: the library computes a pixel
 *   with the same bits whatever window it is in.
 * - Overviews are datasets of the product's decimated levels
 *   (APPROXIMATE=YES, OVERVIEW_FACTOR in their MMCL metadata).
 * - The global figures of an information-loss map are computed on the
 *   first request of the MMCL metadata domain (they need a full pass).
 * - Open options: THREADS, described from the library's option table;
 *   ALLOW_REMOTE=YES lets the descriptor name network and inline paths
 *   (include/mmcl/product.h).
 *
 * Thread-safety: the mmcl product is safe for concurrent reads; each
 * dataset keeps GDAL's rule (one handle per thread), and its lazily added
 * metadata is guarded by a mutex.
 */
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include "mmcl/context.h"
#include "mmcl/options.h"
#include "mmcl/product.h"

#define MMCL_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

MMCL_PLUGIN_EXPORT void GDALRegister_MMCL();
MMCL_PLUGIN_EXPORT void GDALRegisterMe();

namespace
{

/* Largest buffer of one strip of a direct read, in bytes. */
constexpr size_t kStripBytes = size_t(64) << 20;

/* An mmcl context for the duration of one call. */
class Context
{
  public:
    Context() : ctx_(mmcl_context_create())
    {
        /* The library's warnings (inputs that differ from what the model
         * was trained on) become GDAL warnings; its notes are dropped. */
        mmcl_context_set_log(ctx_, Warn, nullptr, MMCL_LOG_WARNING);
    }
    ~Context()
    {
        mmcl_context_destroy(ctx_);
    }
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;
    mmcl_context *get() const
    {
        return ctx_;
    }
    /* Posts the context's message as a GDAL error; returns CE_Failure. */
    CPLErr Fail(CPLErrorNum num = CPLE_AppDefined) const
    {
        const char *msg = mmcl_context_errmsg(ctx_);
        CPLError(CE_Failure, num, "MMCL: %s", *msg ? msg : "failed");
        return CE_Failure;
    }

  private:
    static void Warn(mmcl_log_level level, const char *msg, void *)
    {
        if (level == MMCL_LOG_WARNING)
            CPLError(CE_Warning, CPLE_AppDefined, "MMCL: %s", msg);
    }
    mmcl_context *ctx_;
};

/* The product, shared by a dataset and its overviews. */
class Product
{
  public:
    explicit Product(mmcl_product *p) : p_(p)
    {
    }
    ~Product()
    {
        mmcl_product_destroy(p_);
    }
    Product(const Product &) = delete;
    Product &operator=(const Product &) = delete;
    mmcl_product *get() const
    {
        return p_;
    }

  private:
    mmcl_product *p_;
};

class MMCLRasterBand;

class MMCLDataset final : public GDALDataset
{
    friend class MMCLRasterBand;

  public:
    MMCLDataset(std::shared_ptr<Product> product, int level);
    ~MMCLDataset() override = default;

    static int Identify(GDALOpenInfo *info);
    static GDALDataset *Open(GDALOpenInfo *info);

    CPLErr GetGeoTransform(double *gt) override;
    const OGRSpatialReference *GetSpatialRef() const override;
    char **GetMetadata(const char *domain = "") override;
    const char *GetMetadataItem(const char *name,
                                const char *domain = "") override;

  protected:
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *data,
                     int buf_w, int buf_h, GDALDataType buf_type, int n_bands,
                     int *band_map, GSpacing pixel_space, GSpacing line_space,
                     GSpacing band_space,
                     GDALRasterIOExtraArg *extra) override;

  private:
    CPLErr ReadBlock(int bx, int by, int band, void *image);
    CPLErr ReadDirect(int x, int y, int w, int h, void *data,
                      GDALDataType buf_type, int n_bands, const int *band_map,
                      GSpacing pixel_space, GSpacing line_space,
                      GSpacing band_space, GDALRasterIOExtraArg *extra);
    CPLErr FillCache(int x, int y, int w, int h, int band);
    void AddFigures();
    int BlockEdge() const
    {
        return block_;
    }
    /* Bytes of one sample, and the fill of block edges past the raster. */
    size_t SampleBytes() const
    {
        return size_t(GDALGetDataTypeSizeBytes(type_));
    }
    void Fill(GByte *row, size_t n) const;

    std::shared_ptr<Product> product_;
    int level_;
    int block_;
    GDALDataType type_;
    double gt_[6];
    OGRSpatialReference srs_;
    std::vector<std::unique_ptr<MMCLDataset>> overviews_;
    std::mutex md_mutex_;
    bool figures_added_ = false;
};

class MMCLRasterBand final : public GDALRasterBand
{
  public:
    MMCLRasterBand(MMCLDataset *ds, int band, const char *description);

    CPLErr IReadBlock(int bx, int by, void *image) override;
    double GetNoDataValue(int *success = nullptr) override;
    GDALColorInterp GetColorInterpretation() override;
    const char *GetUnitType() override;
    int GetOverviewCount() override;
    GDALRasterBand *GetOverview(int i) override;

  protected:
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *data,
                     int buf_w, int buf_h, GDALDataType buf_type,
                     GSpacing pixel_space, GSpacing line_space,
                     GDALRasterIOExtraArg *extra) override;
};

/* ---- dataset ----------------------------------------------------------- */

MMCLDataset::MMCLDataset(std::shared_ptr<Product> product, int level)
    : product_(std::move(product)), level_(level)
{
    mmcl_product *p = product_->get();
    nRasterXSize = mmcl_product_width(p, level);
    nRasterYSize = mmcl_product_height(p, level);
    block_ = mmcl_product_block_size(p);
    type_ = mmcl_product_sample_type(p) == MMCL_SAMPLE_BYTE ? GDT_Byte
                                                            : GDT_Float32;
    mmcl_product_geotransform(p, level, gt_);
    srs_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const char *wkt = mmcl_product_srs_wkt(p);
    if (wkt && *wkt)
        srs_.importFromWkt(wkt);
    eAccess = GA_ReadOnly;

    const char *const *md = mmcl_product_metadata(p, level);
    GDALDataset::SetMetadata(const_cast<char **>(md), "MMCL");
    /* What the product is and which mmcl computes it, also in the default
     * domain that gdalinfo and QGIS show, as in the files mmcl writes. */
    const char *kind = CSLFetchNameValue(const_cast<char **>(md), "PRODUCT");
    if (kind)
        SetMetadataItem("MMCL_PRODUCT", kind);
    SetMetadataItem("MMCL_VERSION", mmcl_version());
    if (level > 0) {
        SetMetadataItem("APPROXIMATE", "YES");
        SetMetadataItem("OVERVIEW_FACTOR",
                        CPLSPrintf("%d", mmcl_product_overview_factor(p,
                                                                      level)));
    }
    SetMetadataItem("INTERLEAVE", "PIXEL", "IMAGE_STRUCTURE");
    const int n = mmcl_product_band_count(p);
    for (int b = 0; b < n; b++)
        SetBand(b + 1, new MMCLRasterBand(
                           this, b + 1, mmcl_product_band_description(p, b)));
    if (level == 0)
        for (int l = 1; l < mmcl_product_level_count(p); l++)
            overviews_.emplace_back(new MMCLDataset(product_, l));
}

int
MMCLDataset::Identify(GDALOpenInfo *info)
{
    const char *name = info->pszFilename;
    if (STARTS_WITH_CI(name, "MMCL:"))
        return TRUE;
    const size_t len = strlen(name);
    if (len >= 10 && EQUAL(name + len - 10, ".mmcl.json"))
        return TRUE;
    /* Another .json holding a descriptor. */
    if (info->nHeaderBytes < 2 || !EQUAL(CPLGetExtension(name), "json"))
        return FALSE;
    const char *head = reinterpret_cast<const char *>(info->pabyHeader);
    while (*head == ' ' || *head == '\t' || *head == '\r' || *head == '\n')
        head++;
    return *head == '{' && strstr(head, "\"product\"") &&
           strstr(head, "\"model\"") && strstr(head, "\"optical\"");
}

GDALDataset *
MMCLDataset::Open(GDALOpenInfo *info)
{
    if (!Identify(info))
        return nullptr;
    if (info->eAccess == GA_Update) {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "MMCL: lazy products are read-only; write one with mmcl "
                 "embed, mmcl infoloss or mmcl rgb");
        return nullptr;
    }
    Context ctx;
    if (!ctx.get()) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "MMCL: out of memory");
        return nullptr;
    }
    mmcl_product *p = nullptr;
    if (mmcl_product_open_with_options(
            ctx.get(), info->pszFilename,
            const_cast<const char *const *>(info->papszOpenOptions),
            &p) != MMCL_OK) {
        ctx.Fail(CPLE_OpenFailed);
        return nullptr;
    }
    try {
        auto product = std::make_shared<Product>(p);
        auto *ds = new MMCLDataset(product, 0);
        ds->SetDescription(info->pszFilename);
        return ds;
    } catch (const std::bad_alloc &) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "MMCL: out of memory");
        return nullptr;
    }
}

CPLErr
MMCLDataset::GetGeoTransform(double *gt)
{
    memcpy(gt, gt_, sizeof(gt_));
    return CE_None;
}

const OGRSpatialReference *
MMCLDataset::GetSpatialRef() const
{
    return srs_.IsEmpty() ? nullptr : &srs_;
}

/* The figures of an information-loss map need the whole map: computed on
 * the first request of the MMCL domain, then kept. */
void
MMCLDataset::AddFigures()
{
    std::lock_guard<std::mutex> guard(md_mutex_);
    if (figures_added_ || level_ != 0)
        return;
    figures_added_ = true;
    Context ctx;
    const char *const *kv = nullptr;
    if (mmcl_product_figures(ctx.get(), product_->get(), &kv) != MMCL_OK) {
        ctx.Fail();
        return;
    }
    for (int i = 0; kv && kv[i]; i++) {
        char *key = nullptr;
        const char *value = CPLParseNameValue(kv[i], &key);
        if (key && value)
            GDALDataset::SetMetadataItem(key, value, "MMCL");
        CPLFree(key);
    }
}

char **
MMCLDataset::GetMetadata(const char *domain)
{
    if (domain && EQUAL(domain, "MMCL"))
        AddFigures();
    return GDALDataset::GetMetadata(domain);
}

const char *
MMCLDataset::GetMetadataItem(const char *name, const char *domain)
{
    if (domain && EQUAL(domain, "MMCL") && name &&
        !GDALDataset::GetMetadataItem(name, domain))
        AddFigures();
    return GDALDataset::GetMetadataItem(name, domain);
}

/* Computes block (bx, by): @p band into @p image, the other bands into the
 * block cache (unless already there). */
CPLErr
MMCLDataset::ReadBlock(int bx, int by, int band, void *image)
{
    const int T = BlockEdge();
    const int x = bx * T, y = by * T;
    const int w = std::min(T, nRasterXSize - x);
    const int h = std::min(T, nRasterYSize - y);
    const size_t plane = size_t(w) * h, S = SampleBytes();
    std::vector<GByte> buf;
    try {
        buf.resize(plane * nBands * S);
    } catch (const std::bad_alloc &) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "MMCL: out of memory");
        return CE_Failure;
    }
    Context ctx;
    if (mmcl_product_read(ctx.get(), product_->get(), level_, x, y, w, h,
                          buf.data()) != MMCL_OK)
        return ctx.Fail();
    const int bw = std::min(T, nRasterXSize), bh = std::min(T, nRasterYSize);
    for (int b = 1; b <= nBands; b++) {
        GByte *dst = nullptr;
        GDALRasterBlock *block = nullptr;
        if (b == band) {
            dst = static_cast<GByte *>(image);
        } else {
            GDALRasterBand *other = GetRasterBand(b);
            block = other->TryGetLockedBlockRef(bx, by);
            if (block) {
                block->DropLock();
                continue;
            }
            block = other->GetLockedBlockRef(bx, by, TRUE);
            if (!block)
                continue;
            dst = static_cast<GByte *>(block->GetDataRef());
        }
        const GByte *src = buf.data() + plane * (b - 1) * S;
        for (int r = 0; r < bh; r++) {
            GByte *row = dst + size_t(r) * bw * S;
            if (r < h) {
                memcpy(row, src + size_t(r) * w * S, S * w);
                Fill(row + w * S, size_t(bw - w));
            } else {
                Fill(row, size_t(bw));
            }
        }
        if (block)
            block->DropLock();
    }
    return CE_None;
}

/* @p n samples of nodata (NaN) for the maps, 0 (transparent) for a
 * picture. */
void
MMCLDataset::Fill(GByte *row, size_t n) const
{
    if (type_ == GDT_Byte) {
        memset(row, 0, n);
        return;
    }
    float *f = reinterpret_cast<float *>(row);
    std::fill(f, f + n, std::nanf(""));
}

/* Rows per strip of a direct read of @p w columns: whole blocks, within
 * kStripBytes. */
static int
StripRows(int w, int n_bands, size_t sample_bytes, int T)
{
    const size_t row = size_t(w) * n_bands * sample_bytes;
    size_t rows = std::max<size_t>(1, kStripBytes / std::max<size_t>(row, 1));
    rows = std::max<size_t>(T, rows / T * T);
    return int(std::min<size_t>(rows, 1 << 30));
}

CPLErr
MMCLDataset::ReadDirect(int x, int y, int w, int h, void *data,
                        GDALDataType buf_type, int n_bands,
                        const int *band_map, GSpacing pixel_space,
                        GSpacing line_space, GSpacing band_space,
                        GDALRasterIOExtraArg *extra)
{
    const int T = BlockEdge();
    const size_t S = SampleBytes();
    const int strip = StripRows(w, nBands, S, T);
    std::vector<GByte> buf;
    Context ctx;
    /* Strips end on block rows of the grid, so blocks are not cut. */
    for (int y0 = y; y0 < y + h;) {
        const int y1 = std::min(y + h, (y0 / T) * T + strip);
        const int sh = y1 - y0;
        const size_t plane = size_t(w) * sh;
        try {
            buf.resize(plane * nBands * S);
        } catch (const std::bad_alloc &) {
            CPLError(CE_Failure, CPLE_OutOfMemory, "MMCL: out of memory");
            return CE_Failure;
        }
        if (mmcl_product_read(ctx.get(), product_->get(), level_, x, y0, w,
                              sh, buf.data()) != MMCL_OK)
            return ctx.Fail();
        for (int i = 0; i < n_bands; i++) {
            const GByte *src = buf.data() + plane * (band_map[i] - 1) * S;
            for (int r = 0; r < sh; r++) {
                GByte *dst = static_cast<GByte *>(data) +
                             (y0 - y + r) * line_space + i * band_space;
                GDALCopyWords64(src + size_t(r) * w * S, type_, int(S), dst,
                                buf_type, int(pixel_space), w);
            }
        }
        y0 = y1;
        if (extra && extra->pfnProgress &&
            !extra->pfnProgress(double(y0 - y) / h, "",
                                extra->pProgressData)) {
            CPLError(CE_Failure, CPLE_UserInterrupt, "MMCL: interrupted");
            return CE_Failure;
        }
    }
    return CE_None;
}

/* Fills the block cache of every band for the blocks of the window
 * (x, y, w, h) that @p band does not have yet, computing them on the
 * library's threads. */
CPLErr
MMCLDataset::FillCache(int x, int y, int w, int h, int band)
{
    const int T = BlockEdge();
    const int bw = std::min(T, nRasterXSize), bh = std::min(T, nRasterYSize);
    const int bx0 = x / bw, bx1 = (x + w - 1) / bw;
    const int by0 = y / bh, by1 = (y + h - 1) / bh;
    GDALRasterBand *first = GetRasterBand(band);
    for (int by = by0; by <= by1; by++) {
        /* The span of missing blocks in this row of blocks. */
        int lo = -1, hi = -1;
        for (int bx = bx0; bx <= bx1; bx++) {
            GDALRasterBlock *b = first->TryGetLockedBlockRef(bx, by);
            if (b) {
                b->DropLock();
                continue;
            }
            if (lo < 0)
                lo = bx;
            hi = bx;
        }
        if (lo < 0 || lo == hi)
            continue; /* nothing missing, or one block: IReadBlock */
        const int sx = lo * bw, sy = by * bh;
        const int sw = std::min((hi + 1) * bw, nRasterXSize) - sx;
        const int sh = std::min(bh, nRasterYSize - sy);
        const size_t plane = size_t(sw) * sh, S = SampleBytes();
        std::vector<GByte> buf;
        try {
            buf.resize(plane * nBands * S);
        } catch (const std::bad_alloc &) {
            CPLError(CE_Failure, CPLE_OutOfMemory, "MMCL: out of memory");
            return CE_Failure;
        }
        Context ctx;
        if (mmcl_product_read(ctx.get(), product_->get(), level_, sx, sy, sw,
                              sh, buf.data()) != MMCL_OK)
            return ctx.Fail();
        for (int bx = lo; bx <= hi; bx++) {
            const int cx = bx * bw - sx;
            const int cw = std::min(bw, sw - cx);
            for (int b = 1; b <= nBands; b++) {
                GDALRasterBand *rb = GetRasterBand(b);
                GDALRasterBlock *block = rb->TryGetLockedBlockRef(bx, by);
                if (block) {
                    block->DropLock();
                    continue;
                }
                block = rb->GetLockedBlockRef(bx, by, TRUE);
                if (!block)
                    continue;
                GByte *dst = static_cast<GByte *>(block->GetDataRef());
                const GByte *src = buf.data() + (plane * (b - 1) + cx) * S;
                for (int r = 0; r < bh; r++) {
                    GByte *row = dst + size_t(r) * bw * S;
                    if (r < sh) {
                        memcpy(row, src + size_t(r) * sw * S, S * cw);
                        Fill(row + cw * S, size_t(bw - cw));
                    } else {
                        Fill(row, size_t(bw));
                    }
                }
                block->DropLock();
            }
        }
    }
    return CE_None;
}

CPLErr
MMCLDataset::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *data,
                       int buf_w, int buf_h, GDALDataType buf_type,
                       int n_bands, int *band_map, GSpacing pixel_space,
                       GSpacing line_space, GSpacing band_space,
                       GDALRasterIOExtraArg *extra)
{
    if (rw != GF_Read) {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "MMCL: lazy products are read-only");
        return CE_Failure;
    }
    const int T = BlockEdge();
    const bool several = x / T != (x + w - 1) / T || y / T != (y + h - 1) / T;
    if (buf_w == w && buf_h == h && several)
        return ReadDirect(x, y, w, h, data, buf_type, n_bands, band_map,
                          pixel_space, line_space, band_space, extra);
    return GDALDataset::IRasterIO(rw, x, y, w, h, data, buf_w, buf_h,
                                  buf_type, n_bands, band_map, pixel_space,
                                  line_space, band_space, extra);
}

/* ---- band -------------------------------------------------------------- */

MMCLRasterBand::MMCLRasterBand(MMCLDataset *ds, int band,
                               const char *description)
{
    poDS = ds;
    nBand = band;
    eDataType = ds->type_;
    nBlockXSize = std::min(ds->BlockEdge(), ds->GetRasterXSize());
    nBlockYSize = std::min(ds->BlockEdge(), ds->GetRasterYSize());
    if (description)
        SetDescription(description);
    const char *long_name =
        mmcl_product_band_long_name(ds->product_->get(), band - 1);
    if (long_name)
        SetMetadataItem("LONG_NAME", long_name);
}

CPLErr
MMCLRasterBand::IReadBlock(int bx, int by, void *image)
{
    return static_cast<MMCLDataset *>(poDS)->ReadBlock(bx, by, nBand, image);
}

double
MMCLRasterBand::GetNoDataValue(int *success)
{
    double nodata = 0.0;
    const int has = mmcl_product_nodata(
        static_cast<MMCLDataset *>(poDS)->product_->get(), &nodata);
    if (success)
        *success = has;
    return nodata;
}

const char *
MMCLRasterBand::GetUnitType()
{
    const char *unit = mmcl_product_band_unit(
        static_cast<MMCLDataset *>(poDS)->product_->get(), nBand - 1);
    return unit ? unit : "";
}

GDALColorInterp
MMCLRasterBand::GetColorInterpretation()
{
    const char *name = mmcl_product_band_color(
        static_cast<MMCLDataset *>(poDS)->product_->get(), nBand - 1);
    return name ? GDALGetColorInterpretationByName(name) : GCI_Undefined;
}

int
MMCLRasterBand::GetOverviewCount()
{
    return int(static_cast<MMCLDataset *>(poDS)->overviews_.size());
}

GDALRasterBand *
MMCLRasterBand::GetOverview(int i)
{
    auto &ovr = static_cast<MMCLDataset *>(poDS)->overviews_;
    if (i < 0 || i >= int(ovr.size()))
        return nullptr;
    return ovr[i]->GetRasterBand(nBand);
}

CPLErr
MMCLRasterBand::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h,
                          void *data, int buf_w, int buf_h,
                          GDALDataType buf_type, GSpacing pixel_space,
                          GSpacing line_space, GDALRasterIOExtraArg *extra)
{
    if (rw != GF_Read) {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "MMCL: lazy products are read-only");
        return CE_Failure;
    }
    /* Full resolution over several blocks: compute the missing blocks of
     * every band on the library's threads first; the generic path then
     * finds them in the cache. */
    if (buf_w == w && buf_h == h) {
        CPLErr err = static_cast<MMCLDataset *>(poDS)->FillCache(x, y, w, h,
                                                                 nBand);
        if (err != CE_None)
            return err;
    }
    return GDALRasterBand::IRasterIO(rw, x, y, w, h, data, buf_w, buf_h,
                                     buf_type, pixel_space, line_space,
                                     extra);
}

/* GDAL's open-option list: the library options a descriptor's values can
 * be overridden with at open time (MMCL_OPT_USAGE_OPEN in the library's
 * option table: THREADS), described from that table, so that the plugin,
 * the program and QGIS agree; and ALLOW_REMOTE. */
std::string
OpenOptionList()
{
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs("embed", &n);
    std::string xml;
    for (size_t i = 0; defs && i < n; i++) {
        const mmcl_option_def &d = defs[i];
        if (!(d.usage & MMCL_OPT_USAGE_OPEN) || d.type != MMCL_OPT_INT)
            continue;
        char *help = CPLEscapeString(d.help ? d.help : "", -1, CPLES_XML);
        xml += CPLSPrintf("  <Option name='%s' type='int'", d.name);
        if (d.default_value)
            xml += CPLSPrintf(" default='%s'", d.default_value);
        if (d.min)
            xml += CPLSPrintf(" min='%s'", d.min);
        if (d.max)
            xml += CPLSPrintf(" max='%s'", d.max);
        xml += CPLSPrintf(" description='%s (overrides the descriptor)'/>\n",
                          help);
        CPLFree(help);
    }
    xml += "  <Option name='ALLOW_REMOTE' type='boolean' default='NO' "
           "description='Let the descriptor name network paths (/vsicurl/, "
           "/vsis3/, URLs), other GDAL virtual files, connection strings "
           "and inline datasets; the configuration option "
           "MMCL_DESCRIPTOR_ALLOW_REMOTE does the same for every open'/>\n";
    return "<OpenOptionList>\n" + xml + "</OpenOptionList>";
}

/* The file this plugin was loaded from, for mmcl --check-plugin. */
const char *
PluginFile()
{
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&GDALRegister_MMCL), &info) &&
        info.dli_fname)
        return info.dli_fname;
    return "(unknown)";
}

} // namespace

void
GDALRegister_MMCL()
{
    if (!GDAL_CHECK_VERSION("MMCL"))
        return;
    if (GDALGetDriverByName("MMCL") != nullptr)
        return;
    auto *driver = new GDALDriver();
    driver->SetDescription("MMCL");
    driver->SetMetadataItem(GDAL_DCAP_RASTER, "YES");
    driver->SetMetadataItem(GDAL_DMD_LONGNAME,
                            "mmcl lazy embedding / information-loss map / "
                            "picture (JSON descriptor)");
    const std::string options = OpenOptionList();
    if (!options.empty())
        driver->SetMetadataItem(GDAL_DMD_OPENOPTIONLIST, options.c_str());
    driver->SetMetadataItem(GDAL_DMD_EXTENSIONS, "json");
    driver->SetMetadataItem(GDAL_DMD_CONNECTION_PREFIX, "MMCL:");
    driver->SetMetadataItem("MMCL_PLUGIN_FILE", PluginFile());
    driver->SetMetadataItem("MMCL_VERSION", mmcl_version());
    driver->pfnOpen = MMCLDataset::Open;
    driver->pfnIdentify = MMCLDataset::Identify;
    GetGDALDriverManager()->RegisterDriver(driver);
}

void
GDALRegisterMe()
{
    GDALRegister_MMCL();
}
