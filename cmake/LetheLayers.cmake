# The dependency direction, enforced at configure time.
#
# At the end of the top-level CMakeLists.txt, lethe_check_layers() takes every
# library and executable defined in the tree's folders, reads the project
# includes (`#include "..."`) of each target's sources, and of the headers
# beside a library's sources, resolves each to a file of the tree, finds the
# lethe target whose folder holds that file, and fails the configure step
# unless the including target is that target or links it, directly or
# through other lethe targets. So server/ cannot include worker/, storage/
# cannot include server/, lethectl/ cannot include server/, and a test that
# includes a library's header must link the library.
#
# Includes that resolve to no file of the tree (generated protobuf and SQL
# headers under the build folder, system headers written with quotes) are not
# checked; their targets' link lines already decide whether they build.

# The libraries and executables defined in `dir` and the folders below it.
function(_lethe_targets_below out dir)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  set(found "")
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$")
      list(APPEND found ${t})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _lethe_targets_below(below "${sub}")
    list(APPEND found ${below})
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# The lethe targets `target` links, itself included, following lethe
# targets' link interfaces transitively.
function(_lethe_link_closure out target lethe_targets)
  set(seen ${target})
  set(pending ${target})
  while(pending)
    list(POP_FRONT pending t)
    foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(libs ${t} ${prop})
      if(NOT libs)
        continue()
      endif()
      foreach(lib IN LISTS libs)
        string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" lib "${lib}")
        if(NOT TARGET ${lib})
          continue()
        endif()
        get_target_property(real ${lib} ALIASED_TARGET)
        if(real)
          set(lib ${real})
        endif()
        if(lib IN_LIST lethe_targets AND NOT lib IN_LIST seen)
          list(APPEND seen ${lib})
          list(APPEND pending ${lib})
        endif()
      endforeach()
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# The lethe targets whose folder (SOURCE_DIR) is the longest prefix of
# `file`'s directory: the owners of that file.
function(_lethe_owners out file lethe_targets)
  get_filename_component(dir "${file}" DIRECTORY)
  set(best "")
  set(best_len 0)
  foreach(t IN LISTS lethe_targets)
    get_target_property(src ${t} SOURCE_DIR)
    string(LENGTH "${src}" len)
    if((dir STREQUAL src OR dir MATCHES "^${src}/") AND len GREATER_EQUAL best_len)
      if(len GREATER best_len)
        set(best "")
        set(best_len ${len})
      endif()
      list(APPEND best ${t})
    endif()
  endforeach()
  set(${out} ${best} PARENT_SCOPE)
endfunction()

# The files of `target` to check: its sources, and for a library the
# headers in its folder.
function(_lethe_files out target)
  get_target_property(src ${target} SOURCE_DIR)
  get_target_property(sources ${target} SOURCES)
  set(files "")
  foreach(s IN LISTS sources)
    if(NOT IS_ABSOLUTE "${s}")
      set(s "${src}/${s}")
    endif()
    if(EXISTS "${s}" AND s MATCHES "^${PROJECT_SOURCE_DIR}/")
      list(APPEND files "${s}")
    endif()
  endforeach()
  get_target_property(type ${target} TYPE)
  if(type MATCHES "LIBRARY")
    file(GLOB headers "${src}/*.h")
    list(APPEND files ${headers})
  endif()
  set(${out} ${files} PARENT_SCOPE)
endfunction()

function(lethe_check_layers)
  _lethe_targets_below(lethe_targets "${PROJECT_SOURCE_DIR}")
  set(errors "")
  foreach(target IN LISTS lethe_targets)
    _lethe_link_closure(allowed ${target} "${lethe_targets}")
    _lethe_files(files ${target})
    foreach(file IN LISTS files)
      file(STRINGS "${file}" lines REGEX "^#include \"[^\"]+\"")
      get_filename_component(file_dir "${file}" DIRECTORY)
      foreach(line IN LISTS lines)
        string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" inc "${line}")
        set(resolved "")
        foreach(root "${file_dir}" "${PROJECT_SOURCE_DIR}"
                     "${PROJECT_SOURCE_DIR}/core/include")
          if(EXISTS "${root}/${inc}")
            set(resolved "${root}/${inc}")
            break()
          endif()
        endforeach()
        if(NOT resolved)
          continue()
        endif()
        _lethe_owners(owners "${resolved}" "${lethe_targets}")
        if(NOT owners)
          continue()
        endif()
        set(ok FALSE)
        foreach(o IN LISTS owners)
          if(o IN_LIST allowed)
            set(ok TRUE)
          endif()
        endforeach()
        if(NOT ok)
          file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${file}")
          list(JOIN owners " or " owner_text)
          string(APPEND errors
            "  ${rel} (target ${target}) includes \"${inc}\" of ${owner_text}, "
            "which ${target} does not link\n")
        endif()
      endforeach()
    endforeach()
  endforeach()
  if(errors)
    message(FATAL_ERROR
      "A file includes a header of a library its target does not link "
      "(docs/design.md, \"Libraries and seams\"): link it, or move the code "
      "to the layer it belongs to.\n${errors}")
  endif()
endfunction()
