/* Unit tests for daemon/upstream-file.c, the file the daemon keeps with the upstream
 * routes (setting upstreamRoutesFile): the same content is not written again (same
 * inode, same mtime), new content replaces the file by rename (new inode, mode 0644
 * whatever the umask), nothing is left beside it, a missing folder is an error that
 * leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upstream-file.h"

static size_t entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                n += strcmp(e->d_name, ".") && strcmp(e->d_name, ".."); /* hidden temporaries count */
        closedir(d);
        return n;
}

static void test_keep(void **state)
{
        char dir[] = "/tmp/cu-upstream-file-XXXXXX", path[64], missing[96], buf[64] = "";
        struct stat a, b;
        FILE *f;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/routes.json", dir);
        umask(077);
        assert_int_equal(upstream_file_keep(path, "one\n", 4), 1);
        assert_int_equal(stat(path, &a), 0);
        assert_int_equal(a.st_mode & 0777, 0644);
        /* the same again: not written */
        assert_int_equal(upstream_file_keep(path, "one\n", 4), 0);
        assert_int_equal(stat(path, &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
        assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
        /* new content, same length too: a new file in its place */
        assert_int_equal(upstream_file_keep(path, "two\n", 4), 1);
        assert_int_equal(stat(path, &b), 0);
        assert_int_not_equal(a.st_ino, b.st_ino);
        f = fopen(path, "re");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_string_equal(buf, "two\n");
        assert_int_equal(entries(dir), 1); /* no temporary file left */
        /* empty content is content */
        assert_int_equal(upstream_file_keep(path, "", 0), 1);
        assert_int_equal(upstream_file_keep(path, "", 0), 0);
        snprintf(missing, sizeof(missing), "%s/no/such/routes.json", dir);
        assert_int_equal(upstream_file_keep(missing, "x", 1), -ENOENT);
        assert_int_equal(entries(dir), 1);
        unlink(path);
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keep),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
